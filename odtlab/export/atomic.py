"""Write a file so that it is either complete or absent: temp file, fsync, ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file lives in the same folder (a rename within one file
    system is atomic), is flushed and ``fsync``-ed before ``os.replace``
    puts it in place. If ``write`` raises, the temporary file is removed and
    ``path`` is left as it was: absent, or the previous complete file. A
    reader never sees half a ``.pte``.

    Parameters
    ----------
    path : str or path-like
        The final file; its folder is created if missing.
    write : callable
        Writes the whole content to the binary file object it is given.

    Returns
    -------
    Path
        ``path``, resolved.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.bin"
    >>> write_atomically(target, lambda f: f.write(b"hi")).read_bytes()
    b'hi'
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target
