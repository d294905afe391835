"""Client updates per second: odtlab's vectorized engine against Flower's simulation engine.

The per-client work is that of ``benchmarks/fl.py``: a 20-64-10 MLP, 50
examples per client, batches of 10, one local epoch of plain SGD, FedAvg.
Flower runs the very same odtlab clients and strategy through the bridge
(:class:`odtlab.fl.flower.OdtlabStrategy` on the server,
:func:`odtlab.fl.flower.train_reply` in the ClientApp) on its simulation
engine (``flwr.simulation.run_simulation``, Ray backend, one CPU per actor).
The output line reads::

    flower_sim_updates_per_s: ours=<odtlab vectorized updates/s> baseline=<Flower updates/s> ratio=<x>

Flower's rate is timed inside the ServerApp from the end of round 1 to the
end of the last round: Ray's start-up and the first round (where Ray's
actors start and import torch) are excluded, which favours Flower. odtlab's
rate is that of :func:`odtlab.fl.run_federation` (``engine="vectorized"``)
on the same clients and rounds, whole. Both end with the same weights.

Needs ``pip install "flwr[simulation]==1.42.*"`` (which brings Ray; it is
not part of any extra). Run: ``python benchmarks/fl_flower.py [--clients 100 --rounds 4]``.

Not measured yet: on the course's shared 2-core machine (Ray 2.55.1) Ray's
raylet aborted at start-up twice, waiting for its dashboard agent ("The
current node timed out during startup"), before any round ran. The script
then ends after the ServerApp's wait for nodes (``--wait-s``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

# Flower and Ray look hosts up on the internet unless told not to; set before importing them.
os.environ.update(FLWR_DISABLE_UPDATE_CHECK="1", FLWR_TELEMETRY_ENABLED="0", RAY_USAGE_STATS_ENABLED="0",
                  RAY_DEDUP_LOGS="0", RAY_agent_register_timeout_ms="300000")  # fmt: skip

import torch  # noqa: E402

import odtlab as odt  # noqa: E402
from odtlab.fl import flower  # noqa: E402

BATCH = 10


def fl_workload(clients: int) -> tuple[list[odt.fl.Client], torch.nn.Module]:
    """``benchmarks/fl.py``'s workload (its data, model and recipe), cut to ``clients`` clients."""
    spec = importlib.util.spec_from_file_location("fl_benchmark", Path(__file__).with_name("fl.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    everyone, model = module.workload()
    return everyone[:clients], model


def flower_simulation(clients: list[odt.fl.Client], model: torch.nn.Module, rounds: int, cpus: int,
                      wait_s: float) -> tuple[float, dict]:  # fmt: skip
    """Run the federation on Flower's simulation engine; (seconds of rounds 2..last, final params)."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    client_app, server_app = ClientApp(), ServerApp()
    stamps: dict[int, float] = {}
    final: dict = {}

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        k = int(context.node_config["partition-id"])
        return flower.train_reply(msg, clients[k], model, partition_id=k, batch_size=BATCH,
                                  local_epochs=1, seed=0)  # fmt: skip

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        def stamp(server_round: int, arrays) -> None:
            stamps[server_round] = time.perf_counter()

        bridge = flower.OdtlabStrategy(odt.fl.FedAvg(), num_clients=len(clients), wait_s=wait_s)
        result = bridge.start(grid=grid, initial_arrays=flower.to_array_record(model.state_dict()),
                              num_rounds=rounds, evaluate_fn=stamp)  # fmt: skip
        final.update(flower.from_array_record(result.arrays))

    run_simulation(server_app, client_app, num_supernodes=len(clients),
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"num_cpus": cpus, "include_dashboard": False}})  # fmt: skip
    return stamps[rounds] - stamps[1], final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4, help="at least 2: round 1 is Flower's warm-up")
    parser.add_argument("--cpus", type=int, default=2, help="Ray actors (one CPU each)")
    parser.add_argument("--wait-s", type=float, default=120, help="how long the ServerApp waits for nodes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clients, model = fl_workload(args.clients)
    start = time.perf_counter()
    ours = odt.fl.run_federation(model, clients, odt.fl.FedAvg(), rounds=args.rounds, batch_size=BATCH,
                                 engine="vectorized", progress=False)  # fmt: skip
    ours_rate = args.clients * args.rounds / (time.perf_counter() - start)
    seconds, params = flower_simulation(clients, model, args.rounds, args.cpus, args.wait_s)
    flower_rate = args.clients * (args.rounds - 1) / seconds
    diff = max((params[k] - ours.params[k]).abs().max().item() for k in ours.params)
    print(f"# {args.clients} clients x {args.rounds} rounds; Flower timed over rounds 2..{args.rounds} "
          f"(Ray start-up and round 1 excluded); max |flower - ours| = {diff:.2g}", flush=True)  # fmt: skip
    print(f"flower_sim_updates_per_s: ours={ours_rate:.0f} baseline={flower_rate:.1f} "
          f"ratio={ours_rate / flower_rate:.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
