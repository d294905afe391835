"""The Flower bridge: records round-trip, the bridge's rounds equal odtlab's, and a real deployment.

The deployment test starts a SuperLink and two SuperNodes on 127.0.0.1 (about
25 s on an idle 2-core machine, mostly Python start-ups: every Flower message
starts a fresh ``flwr-clientapp`` process that imports torch) and checks
that the final weights equal :func:`odtlab.fl.run_federation` with the same
clients and seeds. Every process it starts is stopped, on failure too, by
:func:`odtlab.fl.flower.run_deployment` itself.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

import odtlab
from odtlab import OdtlabError
from odtlab.fl import FlowerDeploymentError, FlowerNotInstalled, InvalidDeployment

HAVE_FLWR = importlib.util.find_spec("flwr") is not None
needs_flwr = pytest.mark.skipif(
    not HAVE_FLWR, reason='flwr is not installed: pip install -e ".[fl]" (the test extra includes it)'
)
pytestmark = pytest.mark.usefixtures("one_thread")
PACKAGE = Path(odtlab.__file__).resolve().parent


# --- without Flower -------------------------------------------------------------------------------
def test_only_the_flower_subpackage_imports_flwr():
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if "flower" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            outside += [f"{path}: {n}" for n in names if n.split(".")[0] == "flwr"]
    assert not outside, "import odtlab must work without flwr:\n" + "\n".join(outside)


def test_a_missing_flwr_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)  # what Python does for a missing package
    spec = importlib.util.spec_from_file_location("_requirement_copy", PACKAGE / "fl/flower/requirement.py")
    with pytest.raises(FlowerNotInstalled) as info:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert 'pip install -e ".[fl]"' in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, OdtlabError)


# --- records, task, arguments ---------------------------------------------------------------------
@needs_flwr
def test_the_doctests_run():
    from odtlab.fl.flower import launcher, records, task

    for module in (records, task, launcher):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__


@needs_flwr
def test_array_record_round_trip_is_exact_and_keeps_names_order_and_dtypes():
    from odtlab.fl.flower import from_array_record, to_array_record

    g = torch.Generator().manual_seed(0)
    params = {"z.weight": torch.randn(3, 4, generator=g), "a.bias": torch.randn(4, generator=g).double(),
              "steps": torch.tensor(7), "t": torch.randn(2, 3, generator=g).t()}  # fmt: skip
    back = from_array_record(to_array_record(params))
    assert list(back) == list(params)
    for k, v in params.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    back["z.weight"] += 1  # a copy, not a view of the input
    assert not torch.equal(back["z.weight"], params["z.weight"])


@needs_flwr
def test_config_record_refuses_what_flower_cannot_carry():
    from odtlab.fl.flower import to_config_record

    assert dict(to_config_record({"proximal_mu": 0.1, "server-round": 2})) == {"proximal_mu": 0.1, "server-round": 2}
    with pytest.raises(TypeError, match="anchor"):
        to_config_record({"anchor": torch.zeros(2)})


@needs_flwr
def test_task_round_trips_through_a_run_config_and_refuses_bad_settings():
    from odtlab.fl.flower import FlowerTask

    task = FlowerTask(hidden=(8, 4), strategy="fedprox", strategy_settings={"mu": 0.01}, rounds=3)
    assert FlowerTask.from_run_config(task.to_run_config()) == task
    assert task.make_strategy().configure(1) == {"proximal_mu": 0.01}
    for bad in ({"strategy": "fedsgd"}, {"rounds": 0}, {"num_clients": 0}, {"dataset": "mnist"}):
        with pytest.raises(InvalidDeployment):
            FlowerTask(**bad)
    with pytest.raises(InvalidDeployment, match="name=number"):
        FlowerTask.from_run_config({"strategy-settings": "mu"})
    with pytest.raises(InvalidDeployment, match="partition-id"):
        task.client(2, 2)


@needs_flwr
def test_missing_flower_commands_and_bad_arguments_are_clear_errors(tmp_path):
    from odtlab.fl.flower import FlowerTask, run_deployment

    with pytest.raises(InvalidDeployment, match=r'flower-superlink.*pip install -e "\.\[fl\]"'):
        run_deployment(FlowerTask(), tmp_path / "run", bin_dir=tmp_path)
    with pytest.raises(InvalidDeployment, match="timeout_s"):
        run_deployment(FlowerTask(), tmp_path / "run", timeout_s=0)
    with pytest.raises(InvalidDeployment, match="mu"):  # refused before any process starts
        run_deployment(FlowerTask(strategy="fedprox", strategy_settings={"mu": -1.0}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@needs_flwr
def test_a_superlink_that_dies_at_start_is_reported_with_its_log(tmp_path):
    from odtlab.fl.flower import FlowerTask, run_deployment

    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("flower-superlink", "flower-supernode", "flwr"):
        script = bins / name
        script.write_text("#!/bin/sh\necho 'cannot bind the port' >&2\nexit 3\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(FlowerDeploymentError, match=r"(?s)exited with code 3.*cannot bind the port"):
        run_deployment(FlowerTask(), tmp_path / "run", bin_dir=bins)


# --- the bridge's rounds, in process --------------------------------------------------------------
@pytest.fixture
def flower_task_identity(monkeypatch):
    """Flower stamps messages with the run it belongs to; outside a run, give it one."""
    from flwr.supercore.task_identity import TaskIdentity

    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


@needs_flwr
@pytest.mark.parametrize("strategy, settings", [("fedavg", {}), ("fedprox", {"mu": 0.1}),
                                                ("fedavgm", {"momentum": 0.5}), ("fedadam", {"eta": 0.05})])  # fmt: skip
def test_bridge_rounds_through_flower_messages_equal_run_federation(flower_task_identity, strategy, settings):
    from flwr.app import ConfigRecord

    from odtlab.fl.flower import (
        FlowerTask,
        OdtlabStrategy,
        from_array_record,
        to_array_record,
        train_reply,
    )

    task = FlowerTask(hidden=(16,), strategy=strategy, strategy_settings=settings, rounds=2, num_clients=3)

    class Grid:  # the nodes connected to the SuperLink, in no particular order
        def get_node_ids(self) -> list[int]:
            return [41, 7, 19]

    bridge = OdtlabStrategy(task.make_strategy(), num_clients=3)
    arrays, clients = to_array_record(task.model().state_dict()), task.clients()
    for rnd in (1, 2):
        messages = list(bridge.configure_train(rnd, arrays, ConfigRecord(), Grid()))
        assert [m.metadata.dst_node_id for m in messages] == [7, 19, 41]
        replies = [train_reply(m, clients[k], task.model(), partition_id=k, batch_size=task.batch_size,
                               local_epochs=task.local_epochs, seed=task.seed)
                   for k, m in enumerate(messages)]  # fmt: skip
        arrays, metrics = bridge.aggregate_train(rnd, replies[::-1])  # arrival order does not matter
        assert metrics["clients"] == 3 and not bridge.rejected[rnd]
    ours = task.run_in_process(test=False)
    flower = from_array_record(arrays)
    for k in ours.params:
        assert torch.equal(flower[k], ours.params[k]), k


# --- a real deployment on 127.0.0.1 ---------------------------------------------------------------
def _processes_with(text: str) -> list[str]:
    """Processes whose environment mentions ``text`` (every Flower process inherits FLWR_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "environ").read_bytes():
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found.append(f"{entry.name}: {command}")
            except OSError:  # gone meanwhile, or not ours
                pass
    return found


def _gone(pid: int) -> bool:
    """No live process has this id (a zombie waiting for its parent to read its status is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@needs_flwr
@pytest.mark.slow
def test_superlink_and_two_supernodes_give_the_weights_of_run_federation(tmp_path):
    from odtlab.fl.flower import FlowerTask, run_deployment

    task = FlowerTask(hidden=(16,), rounds=2, num_clients=2, seed=3)
    try:
        flower = run_deployment(task, tmp_path / "deployment", timeout_s=240)
    finally:
        leftovers = _processes_with(f"FLWR_HOME={tmp_path}")
        assert not leftovers, "processes outlived the run:\n" + "\n".join(leftovers)
    assert len(flower.pids) == 3 and all(_gone(pid) for pid in flower.pids)
    ours = task.run_in_process(test=False)
    assert list(flower.params) == list(ours.params)
    for k in ours.params:
        assert torch.allclose(flower.params[k], ours.params[k], rtol=0, atol=1e-6), k


@needs_flwr
def test_a_bad_update_is_rejected_by_name_and_the_others_aggregated(flower_task_identity):
    from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

    from odtlab.fl import FedAvg
    from odtlab.fl.flower import FlowerTask, OdtlabStrategy, from_array_record, to_array_record

    task = FlowerTask(hidden=(4,))

    class Grid:
        def get_node_ids(self) -> list[int]:
            return [1, 2]

    bridge = OdtlabStrategy(FedAvg(), num_clients=2)
    start = task.model().state_dict()
    messages = list(bridge.configure_train(1, to_array_record(start), ConfigRecord(), Grid()))
    good = {k: v + 1 for k, v in start.items()}
    bad = {k: torch.full_like(v, float("nan")) for k, v in start.items()}
    replies = [Message(content=RecordDict({"arrays": to_array_record(p), "metrics": MetricRecord(
                   {"num-examples": 10, "train-loss": 1.0, "partition-id": k})}), reply_to=m)
               for k, (p, m) in enumerate(zip([good, bad], messages, strict=True))]  # fmt: skip
    arrays, metrics = bridge.aggregate_train(1, replies)
    assert [who for who, _ in bridge.rejected[1]] == ["client-1"] and metrics["clients"] == 1
    new = from_array_record(arrays)
    assert all(torch.equal(new[k], good[k]) for k in good)
