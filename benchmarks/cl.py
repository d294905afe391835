"""Continual learning on split and rotated digits: one line per strategy, then the device price.

For each stream (class-incremental split digits: 5 experiences of 2
digits; domain-incremental rotated digits: 0, 45, 90, 135, 180 degrees) and
each strategy, trains the zoo MLP (64-128-64-10, full training, SGD lr
0.05, batches of 32, seed 0; 5 epochs per experience of 270 split digits,
2 per experience of 1347 rotated digits) with
:func:`odtlab.cl.run_stream` and prints::

    cl <stream> <strategy>: acc=<x> bwt=<y> forgetting=<z> memory_bytes=<n>

``acc`` is the mean final accuracy, ``bwt`` the backward transfer,
``forgetting`` the max-minus-last forgetting, ``memory_bytes`` what the
strategy keeps at the end (buffers, Fisher, anchors...), all from
:mod:`odtlab.cl`. Then, per strategy of the class-incremental stream, one
line with its price on the microcontroller and the mid-range phone
(:func:`odtlab.cl.price_on`: one training step, measured by
:func:`odtlab.train.profile`, plus the state)::

    price <strategy>: state_bytes=<n> acc_gain_per_kib=<g> stm32f746=<fits|over by N> phone-mid=<...>

where ``acc_gain_per_kib`` is the accuracy gained over naive fine-tuning per
KiB (1024 bytes) of strategy state.

Last, federated continual learning (:func:`odtlab.cl.federated_stream`): four
clients whose data drift through the same class-incremental stream, FedAvg
(3 rounds of 2 local epochs per experience) without and with a local replay
buffer of 50 examples per client::

    fcl <stream> <fedavg | fedavg+local-replay-50>: acc=... memory_bytes=...

The published pattern for class-incremental split MNIST (van de Ven,
Tuytelaars and Tolias, Nature Machine Intelligence 2022): EWC, SI and LwF
stay close to naive fine-tuning; replay is far above. Runs in about a
minute on 2 idle CPU cores (two minutes when three other jobs share them).

Run: ``python benchmarks/cl.py``
"""

from __future__ import annotations

import dataclasses
import time

import torch

from odtlab import cl, models

DEVICES = ("stm32f746", "phone-mid")


def strategies() -> dict[str, cl.Strategy]:
    """A fresh instance of every strategy (they keep state), buffers of 200 examples."""
    return {
        "naive": cl.Naive(),
        "joint": cl.Joint(),
        "ewc": cl.EWC(lam=3.0),
        "online-ewc": cl.OnlineEWC(lam=3.0),
        "si": cl.SI(c=1.0),
        "lwf": cl.LwF(alpha=1.0),
        "a-gem": cl.AGEM(200),
        "replay": cl.Replay(200),
        "replay-balanced": cl.Replay(200, buffer="class-balanced"),
        "replay-uint8": cl.Replay(200, storage="uint8"),
        "latent-replay": cl.LatentReplay(cut="features.fc2", capacity=200),
    }


def main() -> None:
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
    start = time.perf_counter()
    results = {}
    seconds: dict[str, float] = {}
    rotated = dataclasses.replace(cl.domain_incremental("rotation", seed=0), epochs=2)
    for stream in (cl.class_incremental(seed=0), rotated):
        for name, strategy in strategies().items():
            res = cl.run_stream(models.mlp(seed=0), stream, strategy, seed=0)
            line = res.line().replace(f" {res.strategy}:", f" {name}:")
            print(line, flush=True)
            seconds[stream.name] = seconds.get(stream.name, 0.0) + res.seconds
            if stream.scenario == "class":
                results[name] = (res, strategy, stream)
    for name, (res, strategy, stream) in results.items():
        verdicts = []
        for device in DEVICES:
            price = cl.price_on(res, strategy, stream, device)
            verdicts.append(
                f"{device}=" + ("fits" if price.fits else f"over by {-price.headroom_bytes}")
            )
        gain = res.metrics["acc"] - results["naive"][0].metrics["acc"]
        per_kib = f"{gain / (res.memory_bytes / 1024):.4f}" if res.memory_bytes else "n/a"
        print(f"price {name}: state_bytes={res.memory_bytes} acc_gain_per_kib={per_kib} "
              + " ".join(verdicts), flush=True)  # fmt: skip
    for local_replay in (0, 50):
        res = cl.federated_stream(
            models.mlp(seed=0),
            cl.class_incremental(seed=0),
            clients=4,
            rounds=3,
            local_epochs=2,
            local_replay=local_replay,
            seed=0,
        )
        print(res.line().replace("cl ", "fcl ", 1), flush=True)
    print(" ".join(f"{k}_seconds={v:.1f}" for k, v in seconds.items()),
          f"total_seconds={time.perf_counter() - start:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
