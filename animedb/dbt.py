"""Running dbt against the project's database: the PG* variables of `animedb.db` and the profile
of profiles.yml.example, so nobody needs a ~/.dbt folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from animedb import REPO, db, seeds

PROJECT_DIR = REPO
# dbt's own variable for --project-dir; the wrapper honours it the same way
PROJECT_DIR_VARIABLE = "DBT_PROJECT_DIR"
# dbt commands that may load seeds (`retry` repeats a failed build or seed)
SEED_LOADING_COMMANDS = frozenset({"build", "seed", "retry"})


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


def split_project_dir(args: Sequence[str]) -> tuple[Path, list[str]]:
    """The project the arguments name (`--project-dir DIR`), else $DBT_PROJECT_DIR, else this
    repository; and the arguments without `--project-dir`, which `run` passes itself."""
    rest: list[str] = []
    named: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "--project-dir":
            named = next(items, None)
        elif arg.startswith("--project-dir="):
            named = arg.partition("=")[2]
        else:
            rest.append(arg)
    named = named or os.environ.get(PROJECT_DIR_VARIABLE)
    return (Path(named).expanduser().resolve() if named else PROJECT_DIR), rest


def loads_seeds(args: Sequence[str]) -> bool:
    """Whether `dbt ARGS` may load seeds. Conservative: any seed-loading command word among the
    arguments counts, whatever --select says (checking every seed takes milliseconds)."""
    if "--help" in args or "-h" in args:
        return False
    return any(arg in SEED_LOADING_COMMANDS for arg in args)


def run(
    args: Sequence[str],
    settings: db.Settings | None = None,
    *,
    project_dir: Path | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt ARGS` in the project (`project_dir`, else as `split_project_dir` finds it)
    against the resolved database; never raises on dbt's failure.

    A command that may load seeds first checks every seed of the project whole and raises
    seeds.SeedError before dbt starts or the database is touched. This wrapper is the only
    place that check can run: a bare `dbt build` loads the CSVs through agate, and no model's
    Jinja can read a raw file, so only assert_seed's checks of the loaded tables apply to it.
    """
    named, args = split_project_dir(args)
    project_dir = named if project_dir is None else project_dir
    if loads_seeds(args):
        seeds.check_project(project_dir)
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
