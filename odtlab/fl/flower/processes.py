"""The processes of a local Flower deployment: free ports, their environment, stopping them all.

Helpers of :func:`~odtlab.fl.flower.run_deployment`, usable on their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import odtlab

__all__ = ["free_ports", "flower_env", "tail_log", "stop_processes", "flower_children"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that are free now (the OS picks them)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def flower_env(flwr_home: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of every Flower process: ``FLWR_HOME``, no update check, no telemetry.

    ``PATH`` starts with ``bin_dir`` and ``PYTHONPATH`` with the folder that holds
    the ``odtlab`` being run, so the apps import this very odtlab.
    """
    env = dict(os.environ)
    root = str(Path(odtlab.__file__).resolve().parents[1])
    env.update(
        FLWR_HOME=str(flwr_home),
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p),
        OMP_NUM_THREADS="1",
    )
    return env


def tail_log(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (a note when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_processes(procs: list[subprocess.Popen], marker: str | None = None, timeout_s: float = 30.0) -> None:
    """SIGTERM every process in ``procs`` at once, then poll until they (and their helpers) are gone.

    Flower's helpers (``flower-superexec``, ``flwr-serverapp``, ``flwr-clientapp``)
    run in sessions of their own and exit a few seconds after their parent; with
    a ``marker`` (``FLWR_HOME=...``), every live process with it in its
    environment is waited for too. What outlives ``timeout_s`` gets SIGKILL, by
    process id.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in procs) and not (marker and flower_children(marker, procs)):
            return
        time.sleep(0.2)
    for pid in {p.pid for p in procs if p.poll() is None} | set(flower_children(marker, procs) if marker else []):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait(timeout=10)


def flower_children(marker: str, procs: list[subprocess.Popen]) -> list[int]:
    """Live processes (not zombies) other than ``procs`` whose environment holds ``marker``."""
    ours, found = {p.pid for p in procs} | {os.getpid()}, []
    try:
        entries = [e for e in Path("/proc").iterdir() if e.name.isdigit() and int(e.name) not in ours]
    except OSError:  # no /proc (not Linux): only the processes themselves are watched
        return []
    for entry in entries:
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            pass
    return found
