"""Local leftovers: a run writes in a staging folder of its own, locked by its process; the next
run removes the folders (and DuckDB's spill files in them) of processes that are gone, never one
a live process holds. On Lambda, /tmp outlives an invocation."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from exporter import run_export
from exporter.storage import STAGING_PREFIX, Staging, sweep_staging
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.pg_harness import Server

HOLD = """
import sys, time
from pathlib import Path
from exporter.storage import Staging
with Staging(Path(sys.argv[1])) as staging:
    staging.file("held.parquet").write_bytes(b"in use")
    print(staging.path, flush=True)
    time.sleep(60)
"""


def staging_folders(parent: Path) -> list[Path]:
    return sorted(parent.glob(f"{STAGING_PREFIX}*"))


def test_a_dead_owners_folder_goes_and_a_live_ones_stays(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        held = Path(holder.stdout.readline().strip())
        assert held.is_dir()
        # as a killed process leaves one: the folder and its lock file, which nobody holds
        left = tmp_path / f"{STAGING_PREFIX}killed"
        left.mkdir()
        (left / ".owner").write_bytes(b"")
        (left / "left.parquet").write_bytes(b"x")
        assert sweep_staging(tmp_path) == 1
        assert not left.exists() and (held / "held.parquet").exists()
    finally:
        holder.kill()
        holder.wait()
    assert sweep_staging(tmp_path) == 1  # its owner is gone now
    assert staging_folders(tmp_path) == []
    with Staging(tmp_path) as own:  # and a run's own folder goes with it
        assert own.path is not None and own.path.is_dir()
    assert staging_folders(tmp_path) == []


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    target = str(tmp_path / "lake")
    env = {**h.exporter_env(pg, app_db), "TMPDIR": str(temp)}
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5)
    h.kill_at(env, target, "after_files")
    assert len(staging_folders(temp)) == 1  # what the killed run left
    time.sleep(0.1)
    proc = h.run_cli(env, "run", "--target", target, "--settle", "0")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 staging folder(s) of killed runs" in proc.stderr
    assert staging_folders(temp) == []  # neither the killed run's nor its own
    run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    h.assert_exact(target, pg, app_db)
