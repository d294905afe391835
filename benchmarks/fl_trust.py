"""Trust in federated learning, measured: attacks x defences, privacy vs utility, the price of secrecy.

Four measurements, each line reading ``<name>: ...`` and, where a comparison
exists, ``ours=<x> baseline=<y> ratio=<x/y>``:

* ``fl-trust/table``: main-task accuracy and backdoor attack success rate
  (ASR) after 20 rounds for every attack (none, label flipping, sign
  flipping, scaling / model replacement, backdoor) against every defence
  (FedAvg, FedMedian, FedTrimmedAvg(0.3), multi-Krum keeping ``n - f``,
  FedAvg on updates clipped to 0.5), with 10 % and 30 % malicious clients
  of 10, on a non-IID split (Dirichlet 0.5) of the digits; a 64-128-64-10
  MLP, plain SGD (lr 0.1), 2 local epochs. ``fl-trust/best-defence``: per
  attack, the best defence's accuracy (ours) against the clean run's
  (baseline); the issue's goal is within 5 points at 10 %.
* ``fl-trust/dp``: DP-FedAvg on 100 clients, 20 sampled per round (q = 0.2),
  30 rounds, clip 0.5: accuracy (ours) against FedAvg without privacy
  (baseline), and epsilon at delta = 1e-3 from Opacus's RDP accountant.
* ``fl-trust/dp-sgd-memory``: peak memory of a DP-SGD step (ours) against the
  plain step (baseline), and whether it fits a Cortex-M7 and a phone.
* ``fl-trust/secagg``: bytes uploaded per client with secure aggregation
  (ours) against the plain update (baseline), and measured seconds per client
  and on the server, for 5 to 100 clients and 10 % dropouts.

Run: ``python benchmarks/fl_trust.py`` (about two minutes on 2 CPU cores).
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import Subset

import odtlab as odt
from odtlab import recipes as R
from odtlab.fl import trust

ATTACKS = ("none", "label_flip", "sign_flip", "scale", "backdoor")
DEFENCES = {
    "FedAvg": lambda f, n: odt.fl.FedAvg(),
    "Median": lambda f, n: odt.fl.FedMedian(),
    "Trim0.3": lambda f, n: odt.fl.FedTrimmedAvg(0.3),
    "MultiKrum": lambda f, n: odt.fl.Krum(num_malicious=f, to_keep=n - f),
    "Clip0.5": lambda f, n: odt.fl.ClippedUpdates(max_norm=0.5),
}


def federate(strategy, clients, test, *, rounds: int, clients_per_round: int | None = None, hidden=(128, 64)):
    net = odt.models.mlp(hidden=hidden, seed=0)
    run = odt.fl.run_federation(net, clients, strategy, rounds=rounds, clients_per_round=clients_per_round,
                                local_epochs=2, test_data=test, progress=False, engine="vectorized")  # fmt: skip
    net.load_state_dict(run.params)
    return run.final_accuracy, odt.fl.attack_success_rate(net, test, odt.fl.Trigger())


def attack_table(train, test) -> None:
    parts = odt.data.partition(train, 10, scheme="dirichlet", alpha=0.5, seed=0)
    clients = [odt.fl.Client(f"c{k}", Subset(train, p), R.Recipe(R.SGD(lr=0.1))) for k, p in enumerate(parts)]
    clean = federate(odt.fl.FedAvg(), clients, test, rounds=20)
    print(f"fl-trust/clean FedAvg: accuracy={clean[0]:.3f} asr={clean[1]:.3f}")
    for fraction in (0.1, 0.3):
        print(f"fl-trust/table {int(fraction * 100)}% malicious (accuracy / backdoor ASR):")
        print("  " + f"{'attack':<11}" + "".join(f"{d:>14}" for d in DEFENCES))
        for attack in ATTACKS:
            if attack == "none":
                poisoned, bad = clients, []
            else:
                poisoned, bad = odt.fl.make_malicious(clients, attack, fraction=fraction, seed=0)
            cells = {}
            for name, build in DEFENCES.items():
                f = max(len(bad), 1)
                cells[name] = federate(build(f, len(clients)), poisoned, test, rounds=20)
            print("  " + f"{attack:<11}" + "".join(f"{a:>8.3f}/{s:<5.2f}" for a, s in cells.values()), flush=True)
            if attack != "none":
                key = 1 if attack == "backdoor" else 0  # the backdoor is judged on ASR, the others on accuracy
                best = min(cells, key=lambda d: cells[d][1]) if key else max(cells, key=lambda d: cells[d][0])
                a = cells[best][0]
                print(f"fl-trust/best-defence {int(fraction * 100)}% {attack} accuracy ({best}, ASR "
                      f"{cells[best][1]:.2f}; FedAvg {cells['FedAvg'][0]:.3f}): ours={a:.3f} baseline={clean[0]:.3f} "
                      f"ratio={a / clean[0]:.3f}")  # fmt: skip


def privacy_utility(train, test) -> None:
    parts = odt.data.partition(train, 100, scheme="dirichlet", alpha=0.5, seed=0, min_size=4)
    clients = [odt.fl.Client(f"c{k}", Subset(train, p), R.Recipe(R.SGD(lr=0.1))) for k, p in enumerate(parts)]
    base, _ = federate(odt.fl.FedAvg(), clients, test, rounds=30, clients_per_round=20, hidden=(32,))
    for z in (0.0, 0.3, 0.6, 1.0, 2.0):
        s = trust.DPFedAvg(noise_multiplier=z, clip_norm=0.5, num_clients=100, clients_per_round=20, seed=0)
        acc, _ = federate(s, clients, test, rounds=30, clients_per_round=20, hidden=(32,))
        eps = s.epsilon(1e-3)
        eps_text = f"{eps:.2f}"
        print(f"fl-trust/dp z={z:g} epsilon={eps_text} (delta 1e-3, 30 rounds, q=0.2) accuracy: ours={acc:.3f} "
              f"baseline={base:.3f} ratio={acc / base:.3f}", flush=True)  # fmt: skip


def dp_sgd_memory() -> None:
    x, y = odt.data.as_tensors(odt.data.digits("train"))
    net = odt.models.mlp(seed=0)
    for device in ("stm32f746", "phone-mid"):
        for batch in (1, 8, 32):
            m = trust.dp_sgd_memory(net, (x[:batch].clone(), y[:batch].clone()), device)
            print(f"fl-trust/dp-sgd-memory {device} batch={batch} peak bytes: ours={m.dp_peak_bytes} "
                  f"baseline={m.plain_peak_bytes} ratio={m.dp_peak_bytes / m.plain_peak_bytes:.2f} "
                  f"fits={m.fits} fits_without_dp={m.fits_without_dp}")  # fmt: skip


def secagg() -> None:
    length = sum(p.numel() for p in odt.models.mlp(seed=0).parameters())
    for c in trust.secagg_cost([5, 10, 20, 50, 100], length, dropout_fraction=0.1, seed=0):
        print(f"fl-trust/secagg n={c.n_clients} m={c.vector_length} bytes up per client: ours={c.bytes_up} "
              f"baseline={c.plain_bytes_up} ratio={c.overhead:.3f}; bytes down={c.bytes_down}; "
              f"client_s={c.client_seconds:.4f} server_s={c.server_seconds:.3f}", flush=True)  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    train, test = odt.data.digits("train"), odt.data.digits("test")
    attack_table(train, test)
    privacy_utility(train, test)
    dp_sgd_memory()
    secagg()
    print(f"fl-trust/total seconds={time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()
