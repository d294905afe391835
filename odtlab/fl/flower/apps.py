"""The Flower apps of the bridge: a ClientApp and a ServerApp built from a :class:`FlowerTask`.

Flower finds an app through the ``components`` of its ``pyproject.toml``;
the app folder shipped with odtlab (``odtlab/fl/flower/app``, see
:func:`app_dir`) names two one-line modules that call :func:`client_app`
and :func:`server_app`. Both read the run config (:class:`FlowerTask`), so
the server and every client build the same model, partition and strategy.

* The **ClientApp** answers each training message: it rebuilds client
  ``partition-id`` of ``num-partitions`` (its node config) and trains it with
  :func:`~odtlab.fl.flower.bridge.train_reply`.
* The **ServerApp** runs :class:`~odtlab.fl.flower.bridge.OdtlabStrategy`
  with Flower's ``start(grid=..., initial_arrays=..., num_rounds=...)``,
  evaluates the global model on the test split after each round, and saves
  the final parameters with ``torch.save`` to the absolute path in the run
  config's ``weights-path`` (the app runs from ``$FLWR_HOME/apps/...``, so a
  relative path would land there); when the rounds fail it writes the
  traceback beside it instead (:func:`error_path`).

Both sides run torch on one thread: the thread count alone moves results by
about 1e-8, and the in-process reference runs on one thread too.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from odtlab.fl.errors import InvalidDeployment
from odtlab.fl.flower.bridge import OdtlabStrategy, train_reply
from odtlab.fl.flower.records import from_array_record, to_array_record
from odtlab.fl.flower.task import FlowerTask
from odtlab.train import accuracy

__all__ = ["client_app", "server_app", "run_rounds", "app_dir", "save_params", "error_path", "WEIGHTS_KEY"]

WEIGHTS_KEY = "weights-path"  # run-config key: where the ServerApp saves the final parameters


def app_dir() -> Path:
    """The Flower app folder shipped inside odtlab (``pyproject.toml`` and two small modules)."""
    return Path(__file__).resolve().parent / "app"


def client_app() -> ClientApp:
    """A Flower ClientApp whose ``train`` handler is an odtlab :class:`~odtlab.fl.Client`."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        task = FlowerTask.from_run_config(context.run_config)
        k = int(context.node_config["partition-id"])
        n = int(context.node_config["num-partitions"])
        return train_reply(msg, task.client(k, n), task.model(), partition_id=k,
                           batch_size=task.batch_size, local_epochs=task.local_epochs,
                           seed=task.seed)  # fmt: skip

    return app


def server_app() -> ServerApp:
    """A Flower ServerApp running an odtlab strategy for the task in the run config."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(1)
        out = Path(str(context.run_config.get(WEIGHTS_KEY, "")))
        if not out.is_absolute():
            raise InvalidDeployment(
                f"run config {WEIGHTS_KEY}={str(out)!r} must be an absolute path: the ServerApp "
                "runs from $FLWR_HOME/apps/..., where a relative path would end up"
            )
        try:
            save_params(run_rounds(grid, FlowerTask.from_run_config(context.run_config)), out)
        except Exception:  # leave the launcher a note it can read without asking the SuperLink
            error_path(out).write_text(traceback.format_exc())
            raise

    return app


def run_rounds(grid: Grid, task: FlowerTask) -> dict[str, torch.Tensor]:
    """The ServerApp's work: ``task.rounds`` rounds of the task's strategy; the final parameters.

    The global model is evaluated on the test split before the first round
    and after each one (Flower logs the accuracies).
    """
    evaluator, test = task.model(), task.test_data()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        evaluator.load_state_dict(from_array_record(arrays))
        return MetricRecord({"accuracy": accuracy(evaluator, test)})

    bridge = OdtlabStrategy(task.make_strategy(), num_clients=task.num_clients)
    result = bridge.start(grid=grid, initial_arrays=to_array_record(task.model().state_dict()),
                          num_rounds=task.rounds, evaluate_fn=evaluate)  # fmt: skip
    return from_array_record(result.arrays)


def error_path(weights: Path) -> Path:
    """Where the ServerApp writes its traceback when the run fails: beside the weights."""
    return weights.with_name(weights.name + ".error")


def save_params(params: dict[str, torch.Tensor], path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(params, partial)
    os.replace(partial, path)
