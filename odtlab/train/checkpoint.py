"""Checkpoints that survive a power cut: atomic writes, a checksum, a previous copy.

A device that trains for hours loses power sooner or later, often in the
middle of writing a file. A checkpoint is only useful if, whatever moment the
power goes, the next boot finds *a* good one. Three rules give that:

1. **Atomic replace.** The new checkpoint is written to a temporary file in
   the same folder, flushed and ``os.fsync``-ed, then renamed over the old
   one with ``os.replace`` (atomic on POSIX and Windows), and the folder is
   fsync-ed so the rename itself is on disk. A reader sees the old file or
   the new one, never half of one.
2. **Checksum.** The file starts with a header: the magic bytes
   ``b"ODTLABCK"``, the format version, the payload length and the SHA-256
   of everything else. Truncation, a flipped bit or a foreign file is caught
   on restore (:class:`~odtlab.errors.CorruptCheckpoint`), never loaded.
3. **A previous copy.** Before a save replaces ``path``, the current
   ``path`` (if it passes its checksum) becomes ``path.prev`` (a hard link,
   or a copy where links are not supported). :func:`restore_latest` falls
   back to it when ``path`` is missing or damaged.

The byte layout is in :mod:`odtlab.train.checkpoint_file`.

The payload is read back with ``torch.load(..., weights_only=True)``, which
refuses arbitrary pickled objects, so everything saved must be tensors,
numbers, strings, ``None`` and lists, tuples or dicts of them (random
generator states are saved as the uint8 tensors that ``get_state()`` returns).

The names mirror TensorFlow Lite's on-device training signatures ``save``
and ``restore``.

Examples
--------
>>> import tempfile, pathlib, torch
>>> net = torch.nn.Linear(3, 2)
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = save_checkpoint(folder / "last.ckpt", model=net, step=10)
>>> restore_checkpoint(folder / "last.ckpt", model=torch.nn.Linear(3, 2))
10
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odtlab.errors import CorruptCheckpoint
from odtlab.train.checkpoint_file import (
    FORMAT_VERSION,
    HEADER,
    MAGIC,
    atomic_write,
    check_plain,
    encode,
    previous_path,
    verified_payload,
)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "restore_checkpoint",
    "latest_checkpoint",
    "restore_latest",
    "previous_path",
]


@dataclass(frozen=True)
class Checkpoint:
    """The verified content of one checkpoint file (see :func:`read_checkpoint`).

    Attributes
    ----------
    path : Path
        The file it was read from.
    step : int
        Optimizer steps done when it was saved.
    model_state : dict
        The model's ``state_dict()`` (on the CPU).
    optimizer_state : dict or None
        The optimizer's ``state_dict()``, when one was saved.
    extra : dict
        Whatever the caller passed as ``extra`` (the Trainer keeps its
        random generator states and curves here).
    format_version : int
        Layout version of the file.
    torch_version : str
        ``torch.__version__`` of the writer.
    """

    path: Path
    step: int
    model_state: dict[str, torch.Tensor] = field(repr=False)
    optimizer_state: dict[str, Any] | None = field(repr=False)
    extra: dict[str, Any] = field(repr=False)
    format_version: int = FORMAT_VERSION
    torch_version: str = ""

    def apply_to(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Load this checkpoint into ``model`` (and ``optimizer``); return its step.

        Everything is checked against the model first, so a mismatch raises
        :class:`~odtlab.errors.CorruptCheckpoint` with nothing changed.
        """
        return _apply(self, model, optimizer)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int,
    extra: Mapping[str, Any] | None = None,
    keep_previous: bool = True,
) -> Path:
    """Write a checkpoint atomically, keeping the previous good one as ``path.prev``.

    Parameters
    ----------
    path : str or Path
        The checkpoint file (its folder is created if needed).
    model : nn.Module
        Its ``state_dict()`` (weights and buffers such as BatchNorm statistics).
    optimizer : torch.optim.Optimizer, optional
        Its ``state_dict()`` (momentum, Adam moments, learning rates).
    step : int
        Optimizer steps done so far (>= 0); :func:`restore_checkpoint` returns it.
    extra : mapping, optional
        More to keep: tensors, numbers, strings, ``None`` and lists/dicts of
        them. Save the random state you train with here, e.g.
        ``{"rng": torch.get_rng_state()}``, so a resumed run is bit-exact.
    keep_previous : bool, default True
        Keep the checkpoint being replaced as ``path.prev`` (only if it
        passes its checksum, so a good ``.prev`` is never replaced by a bad one).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If ``extra`` holds something ``torch.load(weights_only=True)`` cannot read.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"save_checkpoint: step must be an int >= 0, got {step!r}.")
    extra = dict(extra or {})
    check_plain(extra, "extra")
    payload = {
        "format": "odtlab-checkpoint",
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra,
        "torch_version": str(torch.__version__),
    }
    blob = encode(payload)
    return atomic_write(Path(path), blob, keep_previous=keep_previous)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint without applying it to anything.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    CorruptCheckpoint
        If the file is empty, truncated, fails its checksum, is not an odtlab
        checkpoint or holds something ``weights_only`` loading refuses; the
        message names the file and the problem.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No checkpoint file at {p}.")
    blob = p.read_bytes()
    body = verified_payload(p, blob)
    try:
        obj = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CorruptCheckpoint(
            f"Checkpoint {p} passes its checksum but torch.load(weights_only=True) cannot "
            f"read its payload ({type(err).__name__}: {err}). It was not written by "
            "odtlab's save_checkpoint."
        ) from err
    if not isinstance(obj, dict) or obj.get("format") != "odtlab-checkpoint":
        raise CorruptCheckpoint(f"Checkpoint {p} has an odtlab header but no odtlab payload.")
    return Checkpoint(
        path=p,
        step=int(obj["step"]),
        model_state=obj["model"],
        optimizer_state=obj["optimizer"],
        extra=obj["extra"],
        format_version=HEADER.unpack_from(blob)[1],
        torch_version=str(obj.get("torch_version", "")),
    )


def _apply(ckpt: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Load a verified checkpoint into ``model`` (and ``optimizer``) after checking it matches."""
    own = model.state_dict()
    missing = sorted(set(own) - set(ckpt.model_state))
    unexpected = sorted(set(ckpt.model_state) - set(own))
    shapes = [
        f"{k}: {tuple(ckpt.model_state[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in ckpt.model_state and tuple(ckpt.model_state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing {missing[:4]}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:4]}")
        if shapes:
            problems.append("shapes differ: " + "; ".join(shapes[:3]))
        raise CorruptCheckpoint(
            f"Checkpoint {ckpt.path} was saved from a different model ({', '.join(problems)}). "
            "Build the same architecture (same builder arguments) before restoring."
        )
    if optimizer is not None:
        if ckpt.optimizer_state is None:
            raise ValueError(
                f"Checkpoint {ckpt.path} holds no optimizer state; pass optimizer=None, or save "
                "with save_checkpoint(..., optimizer=opt)."
            )
        saved = [len(g["params"]) for g in ckpt.optimizer_state["param_groups"]]
        ours = [len(g["params"]) for g in optimizer.param_groups]
        if saved != ours:
            raise CorruptCheckpoint(
                f"Checkpoint {ckpt.path} has optimizer groups of {saved} parameters, this "
                f"optimizer {ours}: it trained a different set of parameters (another recipe?)."
            )
    model.load_state_dict(ckpt.model_state)
    if optimizer is not None:
        optimizer.load_state_dict(ckpt.optimizer_state)  # type: ignore[arg-type]
    return ckpt.step


def restore_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Verify the checkpoint at ``path``, load it into ``model`` (and ``optimizer``).

    Nothing is changed unless the file passes every check and matches the
    model. Returns the saved ``step``.

    Raises
    ------
    FileNotFoundError, CorruptCheckpoint
        As :func:`read_checkpoint`; also when the checkpoint belongs to a
        different model or parameter set.
    """
    return _apply(read_checkpoint(path), model, optimizer)


def latest_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """The newest good checkpoint: ``path``, else ``path.prev`` (with a warning).

    Raises
    ------
    FileNotFoundError
        When neither file exists.
    CorruptCheckpoint
        When no candidate passes its checks; the message lists each problem.
    """
    candidates = [Path(path), previous_path(path)]
    problems: list[str] = []
    for i, candidate in enumerate(candidates):
        try:
            ckpt = read_checkpoint(candidate)
        except FileNotFoundError:
            problems.append(f"{candidate}: missing")
            continue
        except CorruptCheckpoint as err:
            problems.append(str(err))
            continue
        if i > 0:
            warnings.warn(
                f"Falling back to the previous checkpoint {candidate} (step {ckpt.step}): "
                + problems[0],
                stacklevel=3,
            )
        return ckpt
    if all(p.endswith(": missing") for p in problems):
        raise FileNotFoundError(f"No checkpoint at {candidates[0]} or {candidates[1]}.")
    raise CorruptCheckpoint("No usable checkpoint.\n  " + "\n  ".join(problems))


def restore_latest(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Restore the newest good checkpoint (``path``, else ``path.prev``); return its step.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "last.ckpt"
    >>> net = torch.nn.Linear(2, 2)
    >>> _ = save_checkpoint(f, model=net, step=5)
    >>> _ = save_checkpoint(f, model=net, step=6)
    >>> _ = f.write_bytes(f.read_bytes()[:100])      # the power died mid-write
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     restore_latest(f, model=net)
    5
    """
    return _apply(latest_checkpoint(path), model, optimizer)
