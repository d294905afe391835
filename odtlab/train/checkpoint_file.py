"""An odtlab checkpoint on disk: byte layout, checksum checks and the atomic write.

See :mod:`odtlab.train.checkpoint` for why it looks like this::

    offset 0   8 bytes   magic b"ODTLABCK"
    offset 8   uint32    format version (1)
    offset 12  uint64    payload length in bytes
    offset 20  32 bytes  SHA-256 of bytes 0..19 followed by the payload
    offset 52  payload   torch.save of a dict of tensors and plain values

Examples
--------
>>> blob = encode({"step": 3})
>>> blob[:8], len(verified_payload("x.ckpt", blob)) == len(blob) - HEADER.size
(b'ODTLABCK', True)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from odtlab.errors import CorruptCheckpoint

__all__ = ["MAGIC", "FORMAT_VERSION", "HEADER", "check_plain", "encode", "verified_payload",
           "previous_path", "atomic_write"]  # fmt: skip

MAGIC = b"ODTLABCK"
"""First 8 bytes of every odtlab checkpoint."""
FORMAT_VERSION = 1
"""Version of the file layout written by :func:`save_checkpoint`."""
HEADER = struct.Struct("<8sIQ32s")
_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.Size)


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`save_checkpoint` keeps the previous checkpoint: ``path`` + ``".prev"``."""
    p = Path(path)
    return p.with_name(p.name + ".prev")


def check_plain(value: Any, where: str) -> None:
    """Raise TypeError if ``value`` holds anything ``torch.load(weights_only=True)`` refuses."""
    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint extra: key {key!r} at {where} must be a str or int.")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"checkpoint extra: {where} is a {type(value).__name__}, which "
        "torch.load(weights_only=True) cannot read back. Store tensors, numbers, strings, "
        "None and lists/tuples/dicts of them (e.g. generator.get_state(), a tensor)."
    )


def encode(payload: dict[str, Any]) -> bytes:
    """Header + ``torch.save(payload)``: the bytes of a checkpoint file."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    head = HEADER.pack(MAGIC, FORMAT_VERSION, len(body), b"\0" * 32)[:20]
    digest = hashlib.sha256(head + body).digest()
    return head + digest + body


def verified_payload(path: str | os.PathLike[str], blob: bytes) -> bytes:
    """The payload of ``blob`` after every header check; raises CorruptCheckpoint."""
    if not blob:
        raise CorruptCheckpoint(
            f"Checkpoint {path} is empty (0 bytes): the save that wrote it was cut off. "
            f"restore_latest() falls back to {previous_path(path).name}."
        )
    if not MAGIC.startswith(blob[: len(MAGIC)]):
        hint = (
            " It looks like a plain torch.save file; read it with "
            "torch.load(path, weights_only=True)."
            if blob[:4] == b"PK\x03\x04"
            else ""
        )
        raise CorruptCheckpoint(
            f"{path} is not an odtlab checkpoint: it starts with {blob[:8]!r}, not the "
            f"magic bytes {MAGIC!r}.{hint}"
        )
    if len(blob) < HEADER.size:
        raise CorruptCheckpoint(
            f"Checkpoint {path} is truncated: {len(blob)} bytes, shorter than its "
            f"{HEADER.size}-byte header. restore_latest() falls back to the previous one."
        )
    _, version, length, digest = HEADER.unpack_from(blob)
    if version > FORMAT_VERSION or version < 1:
        raise CorruptCheckpoint(
            f"Checkpoint {path} has format version {version}; this odtlab reads versions 1 to "
            f"{FORMAT_VERSION}. Upgrade odtlab (pip install -U odtlab) or re-save it."
        )
    body = blob[HEADER.size :]
    if len(body) < length:
        raise CorruptCheckpoint(
            f"Checkpoint {path} is truncated: its header promises {length} payload bytes but "
            f"only {len(body)} are there. restore_latest() falls back to the previous one."
        )
    if len(body) > length:
        raise CorruptCheckpoint(
            f"Checkpoint {path} has {len(body) - length} unexpected bytes after its payload "
            "(appended to or overwritten by another file)."
        )
    computed = hashlib.sha256(blob[:20] + body).digest()
    if computed != digest:
        raise CorruptCheckpoint(
            f"Checkpoint {path} fails its SHA-256 checksum (stored {digest.hex()[:12]}..., "
            f"computed {computed.hex()[:12]}...): it changed after it was written (a flipped "
            "bit, a partial overwrite or an edit). Do not trust it; use restore_latest()."
        )
    return body


def atomic_write(target: Path, blob: bytes, *, keep_previous: bool = True) -> Path:
    """Write ``blob`` to ``target`` so that a crash at any moment leaves a good file.

    Temporary file in the same folder, flush, ``os.fsync``, optionally keep
    the current good ``target`` as ``target.prev``, ``os.replace``, fsync the
    folder. A crash before the rename leaves ``target`` as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous:
            _keep_previous(target)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _keep_previous(target: Path) -> None:
    """Make ``target.prev`` the current ``target`` if it is a good checkpoint."""
    if not target.exists():
        return
    try:
        verified_payload(target, target.read_bytes())
    except CorruptCheckpoint:
        return  # never replace a good .prev with a damaged file
    prev = previous_path(target)
    staging = prev.with_name(prev.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    try:
        try:
            os.link(target, staging)  # same bytes, no copy
        except OSError:  # file systems without hard links
            shutil.copyfile(target, staging)
            with open(staging, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(staging, prev)
    except BaseException:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
