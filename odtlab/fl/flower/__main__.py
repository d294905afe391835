"""``python -m odtlab.fl.flower`` (``make fl-demo``): a Flower run beside odtlab's own engine.

Starts a SuperLink and one SuperNode per client on 127.0.0.1, runs the
federation (default: 2 clients, 2 rounds, FedAvg, an 18-32-5 MLP on
odtlab's generated sensor features), stops every process, runs the same
clients with the same seeds in process, and prints the rounds, the wall time, the final accuracy and the
largest difference between the two engines' final weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from odtlab.errors import OdtlabError
from odtlab.fl.flower.launcher import run_deployment
from odtlab.fl.flower.task import FlowerTask
from odtlab.train import accuracy


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (1 when the engines disagree, 2 on an odtlab error)."""
    parser = argparse.ArgumentParser(prog="python -m odtlab.fl.flower", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--strategy", default="fedavg", help="fedavg, fedprox, fedavgm or fedadam")
    parser.add_argument("--workdir", default="_build/flower-demo", help="FLWR_HOME, logs and weights go here")
    args = parser.parse_args(argv)
    try:
        task = FlowerTask(num_clients=args.clients, rounds=args.rounds, strategy=args.strategy)
        print(f"Flower 1.42 deployment on 127.0.0.1: 1 SuperLink, {task.num_clients} SuperNodes, "
              f"{task.rounds} rounds of {task.make_strategy().summary()} ...", flush=True)  # fmt: skip
        flower = run_deployment(task, args.workdir)
    except OdtlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # as the Flower clients do
    ours = task.run_in_process()
    model = task.model()
    model.load_state_dict(flower.params)
    acc = accuracy(model, task.test_data())
    diff = max((flower.params[k] - ours.params[k]).abs().max().item() for k in ours.params)
    print(f"  rounds: {task.rounds}  clients: {task.num_clients}  run id: {flower.run_id}")
    print(f"  seconds: {flower.seconds:.1f} (SuperLink start to completed run; logs in {flower.workdir})")
    print(f"  final accuracy: {100 * acc:.1f}% (Flower), {100 * (ours.final_accuracy or 0):.1f}% (in process)")
    print(f"  max |flower - in-process| over the final weights: {diff:.3g}")
    return 0 if diff <= 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
