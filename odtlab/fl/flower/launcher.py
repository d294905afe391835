"""Run a federation on Flower's deployment engine, on this machine, and bring back the weights.

:func:`run_deployment` does what an operator does by hand, on 127.0.0.1:

1. pick free ports and make a fresh ``FLWR_HOME`` under the work folder,
   with a ``config.toml`` that points ``flwr`` at the local SuperLink;
2. start ``flower-superlink --insecure`` (subprocess isolation, runtime
   dependency installation disabled, so nothing is fetched) and wait until
   its ``/health`` answers;
3. start one ``flower-supernode --insecure`` per client, its node config
   saying which partition it holds;
4. ``flwr run <app> local --format json`` with the task's run config, then
   poll ``flwr ls`` until the run is ``finished:completed`` (``flwr run``
   returns 0 even when the ServerApp crashes) and the weights file exists;
5. **always** stop the SuperNodes, then the SuperLink, and poll until every
   process they started is gone, on success and on failure alike.

Every process gets ``FLWR_DISABLE_UPDATE_CHECK=1`` and
``FLWR_TELEMETRY_ENABLED=0`` (without them Flower looks up hosts on the
internet) and a ``PATH`` that starts with this Python's ``bin`` folder
(Flower starts ``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp``
by name).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from odtlab.fl.aggregate import Params
from odtlab.fl.errors import FlowerDeploymentError, InvalidDeployment
from odtlab.fl.flower.apps import WEIGHTS_KEY, app_dir, error_path
from odtlab.fl.flower.processes import flower_env, free_ports, stop_processes, tail_log
from odtlab.fl.flower.task import FlowerTask

__all__ = ["Deployment", "run_deployment"]

BINARIES = ("flower-superlink", "flower-supernode", "flwr")
_LS_EVERY_S = 30.0  # seconds between two `flwr ls` while the run is going


@dataclass
class Deployment:
    """The result of :func:`run_deployment`.

    Attributes
    ----------
    params : dict of str to Tensor
        The final global parameters, as the ServerApp saved them.
    seconds : float
        Wall time from starting the SuperLink to the completed run (start-up included).
    run_id : str
        Flower's id of the run.
    workdir : Path
        The folder with ``FLWR_HOME``, the logs (``*.log``) and the weights.
    pids : list of int
        The SuperLink's and SuperNodes' process ids (all stopped on return).
    """

    params: Params = field(repr=False)
    seconds: float
    run_id: str
    workdir: Path
    pids: list[int] = field(default_factory=list)


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FlowerDeploymentError(
                f"flower-superlink exited with code {proc.returncode} before it was ready; "
                f"its log ({log}) ends:\n{tail_log(log)}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise FlowerDeploymentError(f"flower-superlink did not answer /health within {timeout_s:g} s; log:\n{tail_log(log)}")


def _status(flwr: Path, run_id: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run([str(flwr), "ls", "local", "--run-id", run_id, "--format", "json"],
                         env=env, cwd=cwd, capture_output=True, text=True, timeout=60)  # fmt: skip
    try:
        answer = json.loads(out.stdout)
    except json.JSONDecodeError:
        return ""
    runs = answer.get("runs", []) if isinstance(answer, dict) else answer
    return str(runs[0].get("status", "")) if runs else ""


def run_deployment(
    task: FlowerTask,
    workdir: str | Path,
    *,
    timeout_s: float = 300.0,
    bin_dir: str | Path | None = None,
) -> Deployment:
    """Run ``task`` on a local Flower deployment (a SuperLink, one SuperNode per client).

    Parameters
    ----------
    task : FlowerTask
        Model, data, recipe, strategy, seeds, ``rounds`` and ``num_clients``.
    workdir : str or Path
        A folder for this run (created; a fresh ``FLWR_HOME``, logs and the
        weights go there). Keep it inside the repository's build folder.
    timeout_s : float
        Seconds the whole run may take once the processes are up.
    bin_dir : str, Path or None
        The folder with ``flower-superlink``, ``flower-supernode`` and ``flwr``;
        default: this Python's ``bin`` (the virtual environment).

    Returns
    -------
    Deployment
        The final parameters, the wall time and where the logs are.

    Raises
    ------
    InvalidDeployment
        For a bad ``timeout_s``, strategy settings the strategy refuses, or a
        missing Flower command.
    FlowerDeploymentError
        When a process fails to start, the run fails or it times out; the
        message ends with the failing log.

    Examples
    --------
    >>> run = run_deployment(FlowerTask(rounds=2, num_clients=2), "build/flower")  # doctest: +SKIP
    >>> sorted(run.params)[:2]  # doctest: +SKIP
    ['classifier.bias', 'classifier.weight']
    """
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise InvalidDeployment(f"run_deployment(timeout_s={timeout_s!r}): give a number of seconds > 0")
    try:
        task.make_strategy()  # bad strategy settings fail here, not in the ServerApp
    except (TypeError, ValueError) as err:
        raise InvalidDeployment(f"strategy {task.strategy!r} with {task.strategy_settings}: {err}") from err
    bins = Path(bin_dir) if bin_dir is not None else Path(sys.executable).parent
    missing = [b for b in BINARIES if not (bins / b).is_file()]
    if missing:
        raise InvalidDeployment(
            f"{', '.join(missing)} not found in {bins}; install Flower into this environment: "
            'pip install -e ".[fl]" (or pass bin_dir= the folder that holds them)'
        )
    workdir = Path(workdir).resolve()
    home, app = workdir / "flwr-home", workdir / "app"
    for old in (home, app):
        shutil.rmtree(old, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copytree(app_dir(), app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    weights = workdir / "final_params.pt"
    weights.unlink(missing_ok=True)
    error_path(weights).unlink(missing_ok=True)
    link, *node_ports = free_ports(1 + task.num_clients)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    config = {**task.to_run_config(), WEIGHTS_KEY: str(weights)}
    (workdir / "run_config.toml").write_text("".join(f'"{k}" = {_toml(v)}\n' for k, v in config.items()))
    env = flower_env(home, bins)
    procs: list[subprocess.Popen] = []
    start = time.perf_counter()

    def spawn(name: str, cmd: list[str]) -> subprocess.Popen:
        with open(workdir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=workdir, start_new_session=True)  # fmt: skip
        procs.append(proc)
        return proc

    try:
        superlink = spawn("superlink", [str(bins / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                        "--port", str(link), "--isolation", "subprocess",
                                        "--disable-runtime-dependency-installation"])  # fmt: skip
        _wait_healthy(link, superlink, workdir / "superlink.log", timeout_s=60)
        for k, port in enumerate(node_ports):
            spawn(f"supernode-{k}", [str(bins / "flower-supernode"), "--insecure", "--superlink",
                                     f"127.0.0.1:{link}", "--port", str(port), "--isolation", "subprocess",
                                     "--node-config", f"partition-id={k} num-partitions={task.num_clients}"])  # fmt: skip
        started = subprocess.run([str(bins / "flwr"), "run", str(app), "local", "--format", "json",
                                  "--run-config", str(workdir / "run_config.toml")],
                                 env=env, cwd=workdir, capture_output=True, text=True, timeout=120)  # fmt: skip
        try:
            run_id = str(json.loads(started.stdout)["run-id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FlowerDeploymentError(
                f"flwr run did not start the run (exit {started.returncode}):\n"
                f"{started.stdout[-2000:]}{started.stderr[-2000:]}"
            ) from None
        run_id = _wait_completed(bins / "flwr", run_id, weights, procs, env, workdir, timeout_s)
        params = torch.load(weights, weights_only=True)
        return Deployment(params=params, seconds=time.perf_counter() - start, run_id=run_id,
                          workdir=workdir, pids=[p.pid for p in procs])  # fmt: skip
    finally:
        stop_processes(procs[1:])  # the SuperNodes first (together),
        stop_processes(procs[:1], marker=f"FLWR_HOME={home}")  # then the SuperLink and all Flower started


def _wait_completed(flwr: Path, run_id: str, weights: Path, procs: list[subprocess.Popen],
                    env: dict[str, str], workdir: Path, timeout_s: float) -> str:  # fmt: skip
    """Wait until the run is ``finished:completed`` and the weights file exists.

    The weights file, and the traceback file the ServerApp writes when it fails,
    are watched often (cheap); ``flwr ls`` (a Python process of its own, seconds
    of CPU) is asked as soon as the weights appear, and every ``_LS_EVERY_S`` to
    catch a run that failed without a traceback.
    """
    deadline, status, asked = time.monotonic() + timeout_s, "", time.monotonic()
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise FlowerDeploymentError(
                f"a Flower process exited during run {run_id} (code {dead[0].returncode}); see the logs "
                f"in {workdir}; superlink.log ends:\n{tail_log(workdir / 'superlink.log')}"
            )
        if error_path(weights).is_file():
            raise FlowerDeploymentError(
                f"the ServerApp of run {run_id} failed:\n{tail_log(error_path(weights), 30)}"
            )
        if weights.is_file() or time.monotonic() - asked > _LS_EVERY_S:
            status, asked = _status(flwr, run_id, env, workdir), time.monotonic()
        if status.startswith("finished"):
            if status == "finished:completed" and weights.is_file():
                return run_id
            raise FlowerDeploymentError(
                f"run {run_id} ended as {status!r} (weights file {'found' if weights.is_file() else 'missing'}); "
                f"superlink.log ends:\n{tail_log(workdir / 'superlink.log', 40)}"
            )
        time.sleep(0.25)
    raise FlowerDeploymentError(f"run {run_id} did not finish within {timeout_s:g} s (last status {status!r})")
