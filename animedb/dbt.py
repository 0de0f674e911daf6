"""Running dbt against the project's database: the PG* variables of `animedb.db` and the profile
of profiles.yml.example, so nobody needs a ~/.dbt folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from animedb import db

PROJECT_DIR = Path(__file__).resolve().parent.parent


def ensure_profile(project_dir: Path = PROJECT_DIR) -> Path:
    """profiles.yml beside dbt_project.yml, copied from the example when missing."""
    profile = project_dir / "profiles.yml"
    if not profile.exists():
        shutil.copy(project_dir / "profiles.yml.example", profile)
    return project_dir


def executable() -> str:
    """The dbt of this interpreter's environment (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError("dbt is not installed: run `make install`")
    return found


def environment(settings: db.Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in db.PG_VARIABLES}
    env.update(settings.environment())
    return env


def run(
    args: Sequence[str],
    settings: db.Settings | None = None,
    *,
    project_dir: Path = PROJECT_DIR,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt ARGS` in the project against the resolved database; never raises on failure."""
    settings = db.resolve() if settings is None else settings
    ensure_profile(project_dir)
    return subprocess.run(
        [
            executable(),
            *args,
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
        ],
        env=environment(settings),
        cwd=project_dir,
        capture_output=capture,
        text=True,
        check=False,
    )
