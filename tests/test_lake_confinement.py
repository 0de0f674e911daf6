"""The lake is untrusted input: every path a run, verify, maintenance or abandon reads, writes or
deletes is inside the target (no symbolic link leading out, no file elsewhere named by a
manifest, no catalog row pointing at another lake), and text from the lake is printed escaped."""

from __future__ import annotations

import copy
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from exporter import catalog, layout
from exporter.errors import ExportError
from exporter.fileio import confine
from tests import exporter_helpers as h
from tests.exporter_helpers import assert_refused, watermarks
from tests.lake_helpers import file_hashes, open_lake
from tests.lake_writers import _lake as other_writer
from tests.pg_harness import Server

RUN = ("--quiet", "--settle", "0")


def run(env: dict[str, str], target: Path) -> subprocess.CompletedProcess[str]:
    return h.run_cli(env, "run", "--target", str(target), *RUN)


@pytest.fixture
def lake(pg: Server, app_db: str, tmp_path: Path) -> Path:
    """A lake of one run, with users, wishlist entries and ratings."""
    target = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 10))
    first = run(h.exporter_env(pg, app_db), target)
    assert first.returncode == 0, first.stderr
    return target


def victim(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder outside the lake with a file in it, and its files' hashes."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "precious.parquet").write_bytes(b"not the lake's")
    return folder, file_hashes(folder)


def next_run_id(conn: h.Conn) -> int:
    row = conn.execute("select coalesce(max(run_id), 0) + 1 from etl.export_runs").fetchone()
    assert row is not None
    return int(row[0])


def test_a_planted_run_folder_link_is_refused(
    pg: Server, app_db: str, tmp_path: Path, lake: Path
) -> None:
    """Issue case 7: the next run's folder in a table, planted as a link to a folder elsewhere:
    the run writes nothing there and says so in one line; without the link it completes."""
    outside, hashes = victim(tmp_path)
    users = open_lake(str(lake)).load("users")
    assert users is not None
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        planted = Path(layout.run_location(users.location(), next_run_id(conn)))
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.symlink_to(outside, target_is_directory=True)
        h.add_users(conn, 3, prefix="later")
        before = watermarks(conn)
        assert_refused(run(env, lake), "outside the lake", f"leads to {outside}")
        assert watermarks(conn) == before
    assert file_hashes(outside) == hashes
    planted.unlink()
    again = run(env, lake)
    assert again.returncode == 0, again.stderr
    h.assert_exact(str(lake), pg, app_db)


def test_abandon_never_deletes_through_a_planted_link(
    pg: Server, app_db: str, tmp_path: Path, lake: Path
) -> None:
    """Issue case 7: `abandon` of a pending run whose folder is a link to elsewhere deletes
    nothing there."""
    outside, hashes = victim(tmp_path)
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 3, prefix="later")
        h.kill_at(env, str(lake), "after_pending")
        pending = next_run_id(conn) - 1
    users = open_lake(str(lake)).load("users")
    assert users is not None
    planted = Path(layout.run_location(users.location(), pending))
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(outside, target_is_directory=True)
    assert_refused(h.run_cli(env, "abandon", str(pending)), "outside the lake")
    assert file_hashes(outside) == hashes


def _plant_outside_files(lake: Path, tmp_path: Path) -> Path:
    """Another writer appends copies of a users data file, kept outside the lake, to the
    current-state table: manifest entries naming files elsewhere (eight: enough small files
    for maintenance to compact them)."""
    other = other_writer(str(lake))
    table = other.catalog.load_table(other.identifier("users"))
    data = next(iter(table.scan().plan_files())).file
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
        for i in range(8):
            outside = folder / f"copy-{i}.parquet"
            shutil.copyfile(data.file_path.removeprefix("file://"), outside)
            moved = copy.copy(data)
            moved._data = list(data._data)  # pyiceberg's DataFile keeps its fields in a list
            moved._data[1] = str(outside)
            append.append_data_file(moved)
    return folder


def test_a_manifest_naming_a_file_elsewhere_is_refused(
    pg: Server, app_db: str, tmp_path: Path, lake: Path
) -> None:
    """Issue case 8: run, verify and maintenance never read a data file outside the lake, and
    never copy its rows into it."""
    outside = _plant_outside_files(lake, tmp_path)
    env = h.exporter_env(pg, app_db)
    hashes = file_hashes(lake)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 2, prefix="later")
        conn.execute("update app.users set bio = 'changed' where username = 'user_1'")
        assert_refused(run(env, lake), "outside the lake", str(outside))
    assert_refused(h.run_cli(env, "verify", "--target", str(lake)), "outside the lake")
    assert_refused(h.run_cli(env, "maintain", "--target", str(lake), "--quiet"), "outside the lake")
    # the refused run left its own files (it resumes), but nothing of the files elsewhere
    # reached the lake: no copy of theirs, no rewrite made of their rows
    after = file_hashes(lake)
    copied = set(file_hashes(outside).values())  # copies of a file of the lake's first run
    assert [k for k, v in after.items() if v in copied] == [
        k for k, v in hashes.items() if v in copied
    ]
    assert not [k for k in after if "/rewrite-" in k and k not in hashes]


def test_a_catalog_row_pointing_at_another_lake_is_refused(
    pg: Server, app_db: str, tmp_path: Path, lake: Path
) -> None:
    """Issue case 8: a catalog row redirected to another lake's metadata: the run refuses it
    in one line, and the other lake is left as it was."""
    env = h.exporter_env(pg, app_db)
    second = tmp_path / "second"
    assert run(env, second).returncode == 0
    theirs = open_lake(str(second)).load("users")
    assert theirs is not None
    with sqlite3.connect(lake / catalog.LOCAL_CATALOG_FILE) as db:
        db.execute(
            "update iceberg_tables set metadata_location = ? where table_name = 'users'",
            (theirs.metadata_location,),
        )
    hashes = file_hashes(second)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 2, prefix="later")
    assert_refused(run(env, lake), "outside the lake")
    assert file_hashes(second) == hashes


def test_text_from_the_lake_is_printed_escaped(
    pg: Server, app_db: str, tmp_path: Path, lake: Path
) -> None:
    """Issue case 9: identity text with a newline and a terminal's escape codes stays on the
    one line, escaped."""
    forged = "animedb\n\x1b[31mERROR: all rows lost\x1b[0m"
    own = open_lake(str(lake))
    own.catalog.update_namespace_properties(own.namespace, updates={layout.SOURCE_DATABASE: forged})
    proc = run(h.exporter_env(pg, app_db), lake)
    line = assert_refused(proc, "mirrors database", "\\x1b[31m")
    assert "\x1b" not in proc.stderr and "\x1b" not in proc.stdout
    assert "\\n" in line


@pytest.mark.parametrize(
    ("location", "inside"),
    [
        ("s3://lake/prefix/animedb/users/data/f.parquet", True),
        ("s3://lake/prefix", True),
        ("s3://lake/prefix-other/f.parquet", False),
        ("s3://lake/prefix/../other/f.parquet", False),
        ("s3://lake/prefix//f.parquet", False),
        ("s3://other/prefix/f.parquet", False),
        ("s3a://lake/prefix/f.parquet", True),
        ("/elsewhere/f.parquet", False),
    ],
)
def test_s3_locations_inside_a_prefix(location: str, inside: bool) -> None:
    roots = ["s3://lake/prefix"]
    if inside:
        confine(location, roots)
    else:
        with pytest.raises(ExportError, match="outside the lake"):
            confine(location, roots)
    confine("s3://lake/any/where", ["s3://lake"])  # a whole bucket's lake
