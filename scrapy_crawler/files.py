"""The seeds' file handling: `staging_folder` and `move_into` replace a set of files that are all
written before the first one replaces its target (one file at a time: `animedb.files`).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from animedb.files import install


def unwritable(folder: Path) -> str | None:
    """Why files could not be created in `folder` (or in the folder that would hold it), or None.

    A check before a long job starts; writing is the real test, and it fails cleanly too.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _new_folder(parent: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(dir=parent, prefix=prefix))


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new empty hidden folder, on the file system of `target`, removed on exit.

    It sits beside `target` (`.seeds.staging-*` next to `seeds/`), so a process killed mid-write
    leaves nothing inside `target` for its readers (dbt reads every CSV under its seed folder);
    it goes inside `target` when `target` is a mount point or its parent is read-only, so that a
    rename from it is still atomic.
    """
    target = target.absolute()
    target.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.staging-"
    parent = target.parent
    try:
        if parent.stat().st_dev != target.stat().st_dev:
            raise OSError(errno.EXDEV, "another file system", str(parent))
        staging = _new_folder(parent, prefix)
    except OSError:
        staging = _new_folder(target, prefix)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into(staging: Path, target: Path, names: Iterable[str]) -> None:
    """Move each named file from `staging` over its namesake in `target`, one rename each."""
    for name in names:
        install(staging / name, target / name)
