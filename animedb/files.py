"""Atomic file writes, for every tool: a file is written beside its target, then renamed over it,
so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# mkstemp creates files readable by the owner only; give them the usual umask-based mode.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def install(temp: Path, path: Path) -> None:
    """Rename `temp` over `path` (one atomic step on one file system), with the usual mode."""
    temp.chmod(0o666 & ~_UMASK)
    temp.replace(path)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        install(Path(temp_name), path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
