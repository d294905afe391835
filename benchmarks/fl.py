"""Federated engines side by side: the vectorized engine against the plain loop, and the workload's floor.

Workload (from the federated-learning issue): 1,000 clients, all taking part
in every round, one local epoch of 50 examples in batches of 10, a 20-64-10
MLP, plain SGD, FedAvg. Each line reads ``<name>: ours=<x> baseline=<y>
ratio=<x/y>``, units in the name:

* ``fl/updates-per-s``: client updates per second of the vectorized engine
  (ours) and of the plain loop (baseline), measured on rounds of the same
  workload (the loop on fewer rounds: it is the slow one);
* ``fl/vectorized-100-rounds (s)``: wall time of the 100 rounds, ours against
  a bare ``vmap(grad(...))`` loop over the same batches with nothing else
  (no checks, no aggregation object, no costs);
* ``fl/flops-floor (s)``: the workload's FLOPs (torch's FLOP counter) over a
  measured matmul rate of this machine, against our wall time.

* ``fl/scaling``: with ``--scaling``, wall time of one round and the peak
  memory of the process (``ru_maxrss`` of a fresh child process per point)
  for 10 to 10,000 clients, both engines (the loop only up to 1,000: it is
  linear), and a plot in ``_build/benchmarks/fl_scaling.png``.

Run: ``python benchmarks/fl.py [--rounds 100] [--scaling]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.func import functional_call, grad, vmap
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

import odtlab as odt
from odtlab import recipes as R

CLIENTS, PER_CLIENT, BATCH, FEATURES, CLASSES = 1000, 50, 10, 20, 10


def workload(seed: int = 0, clients: int = CLIENTS) -> tuple[list[odt.fl.Client], torch.nn.Module]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=g) * 2
    y = torch.randint(0, CLASSES, (clients * PER_CLIENT,), generator=g)
    x = centres[y] + torch.randn(len(y), FEATURES, generator=g)
    recipe = R.Recipe(R.SGD(lr=0.05))
    clients = [odt.fl.Client(f"c{k}", TensorDataset(x[k * PER_CLIENT:(k + 1) * PER_CLIENT],
                                                    y[k * PER_CLIENT:(k + 1) * PER_CLIENT]), recipe)
               for k in range(clients)]  # fmt: skip
    return clients, odt.models.mlp(FEATURES, hidden=(64,), num_classes=CLASSES, seed=seed)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_vmap_seconds(model: torch.nn.Module, clients: list[odt.fl.Client], rounds: int) -> float:
    """The same steps as a bare vmap(grad) loop: stacked params, one gather per step, a mean."""
    x = torch.stack([c.data.tensors[0] for c in clients])
    y = torch.stack([c.data.tensors[1] for c in clients])
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p, xb, yb):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb)

    step = vmap(grad(loss), in_dims=(0, 0, 0))

    def run() -> None:
        nonlocal params
        g = torch.Generator().manual_seed(0)
        for _ in range(rounds):
            stacked = {n: v.expand(CLIENTS, *v.shape).clone() for n, v in params.items()}
            order = torch.stack([torch.randperm(PER_CLIENT, generator=g) for _ in range(CLIENTS)])
            for s in range(PER_CLIENT // BATCH):
                idx = order[:, s * BATCH:(s + 1) * BATCH]
                xb = torch.gather(x, 1, idx[..., None].expand(-1, -1, FEATURES))
                grads = step(stacked, xb, torch.gather(y, 1, idx))
                stacked = {n: stacked[n] - 0.05 * grads[n] for n in stacked}
            params = {n: v.mean(0) for n, v in stacked.items()}

    return timed(run)


def matmul_flops_per_s() -> float:
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(3):
        a @ b
    n, start = 50, time.perf_counter()
    for _ in range(n):
        a @ b
    return n * 2 * 512**3 / (time.perf_counter() - start)


def workload_flops(model: torch.nn.Module, rounds: int) -> float:
    xb, yb = torch.randn(BATCH, FEATURES), torch.randint(0, CLASSES, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
    return counter.get_total_flops() * (PER_CLIENT // BATCH) * CLIENTS * rounds


def one_round(engine: str, clients_n: int) -> tuple[float, float]:
    """Seconds of one round of ``clients_n`` clients, and the process's peak memory (bytes)."""
    import resource

    torch.set_num_threads(2)  # as main() does
    clients, model = workload(clients=clients_n)
    odt.fl.run_federation(model, clients[:10], odt.fl.FedAvg(), rounds=1, batch_size=BATCH, engine=engine,
                          progress=False)  # fmt: skip
    seconds = timed(lambda: odt.fl.run_federation(model, clients, odt.fl.FedAvg(), rounds=1, batch_size=BATCH,
                                                  engine=engine, progress=False))  # fmt: skip
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def scaling(sizes: tuple[int, ...] = (10, 100, 1000, 10000)) -> None:
    """One round per engine and size, each in a fresh process so that its peak memory is its own."""
    import multiprocessing as mp
    from pathlib import Path

    rows = []
    ctx = mp.get_context("spawn")
    for engine in ("vectorized", "loop"):
        for n in sizes:
            if engine == "loop" and n > 1000:
                continue
            with ctx.Pool(1) as pool:
                seconds, peak = pool.apply(one_round, (engine, n))
            rows.append((engine, n, seconds, peak))
            print(f"fl/scaling {engine} {n} clients: seconds_per_round={seconds:.3f} "
                  f"updates_per_s={n / seconds:.0f} peak_rss_mib={peak / 2**20:.0f}", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for engine in ("vectorized", "loop"):
        pts = [(n, s, m) for e, n, s, m in rows if e == engine]
        ax1.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=engine)
        ax2.semilogx([p[0] for p in pts], [p[2] / 2**20 for p in pts], marker="o", label=engine)
    ax1.set(xlabel="clients in the round", ylabel="seconds per round")
    ax2.set(xlabel="clients in the round", ylabel="peak process memory (MiB)")
    ax1.legend()
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "_build" / "benchmarks" / "fl_scaling.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"fl/scaling plot: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--loop-rounds", type=int, default=1)
    parser.add_argument("--scaling", action="store_true", help="also time one round for 10 to 10,000 clients")
    args = parser.parse_args()
    torch.set_num_threads(2)
    clients, model = workload()
    # Warm-up: the first vmap call imports parts of torch (about 2 s) that no later round pays.
    odt.fl.run_federation(model, clients[:10], odt.fl.FedAvg(), rounds=1, batch_size=BATCH,
                          engine="vectorized", progress=False)  # fmt: skip
    run = {}
    ours = timed(lambda: run.setdefault("v", odt.fl.run_federation(
        model, clients, odt.fl.FedAvg(), rounds=args.rounds, batch_size=BATCH, engine="vectorized",
        progress=False)))  # fmt: skip
    loop = timed(lambda: odt.fl.run_federation(model, clients, odt.fl.FedAvg(), rounds=args.loop_rounds,
                                               batch_size=BATCH, engine="loop", progress=False))
    ours_rate, loop_rate = CLIENTS * args.rounds / ours, CLIENTS * args.loop_rounds / loop
    print(f"fl/updates-per-s vectorized-vs-loop {CLIENTS} clients: ours={ours_rate:.0f} "
          f"baseline={loop_rate:.0f} ratio={ours_rate / loop_rate:.1f}", flush=True)
    bare = bare_vmap_seconds(model, clients, args.rounds)
    print(f"fl/vectorized-{args.rounds}-rounds {CLIENTS} clients (s): ours={ours:.2f} baseline={bare:.2f} "
          f"ratio={ours / bare:.2f}", flush=True)
    floor = workload_flops(model, args.rounds) / matmul_flops_per_s()
    print(f"fl/flops-floor {CLIENTS} clients x {args.rounds} rounds (s): ours={ours:.2f} baseline={floor:.3f} "
          f"ratio={ours / floor:.0f}", flush=True)
    if args.scaling:
        scaling()


if __name__ == "__main__":
    main()
