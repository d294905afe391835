"""Continual learning on split and rotated digits: one line per strategy, then the device price.

For each stream (class-incremental split digits: 5 experiences of 2
digits; domain-incremental rotated digits: 0, 45, 90, 135, 180 degrees) and
each strategy, trains the zoo MLP (64-128-64-10, full training, SGD lr
0.05, 5 epochs of batches of 32 per experience, seed 0) with
:func:`odtlab.cl.run_stream` and prints::

    cl <stream> <strategy>: acc=<x> bwt=<y> forgetting=<z> memory_bytes=<n>

``acc`` is the mean final accuracy, ``bwt`` the backward transfer,
``forgetting`` the max-minus-last forgetting, ``memory_bytes`` what the
strategy keeps at the end (buffers, Fisher, anchors...), all from
:mod:`odtlab.cl`. Then, per strategy of the class-incremental stream, one
line with its price on the microcontroller and the mid-range phone (one
training step, measured by :func:`odtlab.train.profile`, plus the state)::

    price <strategy>: state_bytes=<n> stm32f746=<fits|over by N> phone-mid=<...>

The published pattern for class-incremental split MNIST (van de Ven,
Tuytelaars and Tolias, Nature Machine Intelligence 2022): EWC, SI and LwF
stay close to naive fine-tuning; replay is far above. Runs in well under
two minutes on 2 CPU cores.

Run: ``python benchmarks/cl.py``
"""

from __future__ import annotations

import time

import torch

from odtlab import cl, data, devices, models, train

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


def step_bytes(res: cl.StreamResult, strategy: cl.Strategy, batch: int, device: str) -> int:
    """Peak of one training step of what the strategy trains at the end (latent replay: the
    layers above the cut, on activations) on ``device`` (frozen weights in flash on an MCU)."""
    x, y = data.as_tensors(cl.class_incremental(seed=0)[0].train)
    module = strategy.trained_module(res.model)
    example = (strategy.encode(res.model, x[:batch]), y[:batch])
    report = train.profile(module, example, None, device, flops=False)
    return devices.verdict(report, device).peak_bytes


def main() -> None:
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
    start = time.perf_counter()
    results = {}
    seconds: dict[str, float] = {}
    for stream in (cl.class_incremental(seed=0), cl.domain_incremental("rotation", seed=0)):
        for name, strategy in strategies().items():
            res = cl.run_stream(models.mlp(seed=0), stream, strategy, seed=0)
            line = res.line().replace(f" {res.strategy}:", f" {name}:")
            print(line, flush=True)
            seconds[stream.name] = seconds.get(stream.name, 0.0) + res.seconds
            if stream.scenario == "class":
                results[name] = (
                    res,
                    strategy,
                    stream.batch_size + strategy.replay_size(stream.batch_size),
                )
    for name, (res, strategy, batch) in results.items():
        verdicts = []
        for device in DEVICES:
            budget = devices.get(device).training_memory_bytes
            step = step_bytes(res, strategy, batch, device)
            price = cl.MemoryPrice(device, res.memory, step, budget)
            verdicts.append(
                f"{device}=" + ("fits" if price.fits else f"over by {-price.headroom_bytes}")
            )
        print(f"price {name}: state_bytes={res.memory_bytes} " + " ".join(verdicts), flush=True)
    print(" ".join(f"{k}_seconds={v:.1f}" for k, v in seconds.items()),
          f"total_seconds={time.perf_counter() - start:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
