"""A target is its identity, not its spelling: one canonical form, checked before anything is
recorded; a watermark key that covers everything deciding where rows land (target, catalog,
namespace, warehouse); a catalog namespace that belongs to one target; local writes that never
rename across file systems."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import protocol
from tests import exporter_helpers as h
from tests.exporter_helpers import assert_refused, watermarks
from tests.lake_helpers import file_hashes
from tests.pg_harness import Server
from tests.s3_harness import S3Endpoint

RUN = ("--quiet", "--settle", "0")


def run(env: dict[str, str], target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return h.run_cli(env, "run", "--target", target, *extra, *RUN)


def targets_recorded(conn: h.Conn) -> set[str]:
    rows = conn.execute(
        "select target from etl.watermarks union select target from etl.export_runs"
    ).fetchall()
    return {str(r[0]) for r in rows}


def test_another_catalog_never_takes_a_targets_delta(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """Issue case 1: `--catalog other` on the same folder is refused, not counted as the
    folder's run; a catalog configured elsewhere gets a lake (and watermarks) of its own."""
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 5))
        assert run(env, target).returncode == 0
        h.add_watching(conn, h.add_users(conn, 5, prefix="delta"), score=9)
        before = watermarks(conn)
        hashes = file_hashes(tmp_path / "lake")

        refused = run(env, target, "--catalog", "other")
        assert_refused(refused, "catalog 'other' does not know", "--catalog")
        assert watermarks(conn) == before
        assert file_hashes(tmp_path / "lake") == hashes

        elsewhere = tmp_path / "other-warehouse"
        configured = {
            **env,
            "PYICEBERG_CATALOG__OTHER__TYPE": "sql",
            "PYICEBERG_CATALOG__OTHER__URI": f"sqlite:///{tmp_path / 'other.db'}",
            "PYICEBERG_CATALOG__OTHER__WAREHOUSE": str(elsewhere),
        }
        own = run(configured, target, "--catalog", "other")
        assert own.returncode == 0, own.stderr
        assert file_hashes(tmp_path / "lake") == hashes  # its files went to its warehouse
        assert any(elsewhere.rglob("*.parquet"))
        assert len(targets_recorded(conn)) == 2

        assert run(env, target).returncode == 0  # the folder's own delta is still there
    h.assert_exact(target, pg, app_db)


def test_two_s3_targets_never_share_a_namespace(
    pg: Server, app_db: str, s3: S3Endpoint, s3_target: str
) -> None:
    """Issue case 2: two targets in one account with one Glue namespace: the second is refused
    before it writes anything, the first keeps exactly its own rows."""
    env = h.exporter_env(pg, app_db, **s3.env())
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 5))
        assert run(env, s3_target).returncode == 0
        bucket = s3.buckets[-1]
        keys = s3.keys(bucket)
        s3.create_bucket(f"{bucket}-second")
        second = f"s3://{bucket}-second/x"

        refused = run(env, second)
        assert_refused(refused, s3_target, "--namespace")
        assert s3.keys(bucket) == keys
        assert not [k for k in s3.keys(f"{bucket}-second") if not k.startswith("x/.write")]
        assert {key.partition("#")[0] for key in targets_recorded(conn)} == {s3_target}

        own = run(env, second, "--namespace", f"{s3.namespace}_second")
        assert own.returncode == 0, own.stderr
    h.assert_exact(s3_target, pg, app_db)
    second_env = h.exporter_env(pg, app_db, **s3.env(ANIMEDB_NAMESPACE=f"{s3.namespace}_second"))
    checked = h.run_cli(second_env, "verify", "--target", second, "--quiet")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("spelling", "needle"),
    [
        ("{tmp}/lake?q", "'?'"),
        ("{tmp}/coll#ns2", "'#'"),
        ("{tmp}/lake%41", "'%'"),
        ("{tmp}/g[1]", "'['"),
        ("{tmp}/new\nline", "'\\n'"),
        ("file://elsewhere{tmp}/lake", "host"),
        ("file://{tmp}/lake?x=1", "'?'"),
        ("s3://bucket/x?y", "'?'"),
        ("s3://bucket/x#ns2", "'#'"),
        ("s3://bucket/a%41", "'%'"),
        ("s3://bucket/../x", "'..'"),
        ("s3://bucket/a//b", "empty"),
        ("s3://bucket/g[1]", "'['"),
        ("s3://Bad_Bucket/x", "bucket name"),
        ("{tmp}/" + "x" * 300, "255"),
        ("s3://bucket/" + "x/" * 300, "characters"),
    ],
)
def test_a_target_that_is_not_canonical_is_refused_before_anything_is_recorded(
    pg: Server, app_db: str, tmp_path: Path, spelling: str, needle: str
) -> None:
    """Issue cases 3 and 11 (`s3://b/../x`, `s3://b/g[1]`, a 300-character target): one line,
    exit 1, no run recorded, nothing created anywhere."""
    target = spelling.format(tmp=tmp_path)
    proc = run(h.exporter_env(pg, app_db, AWS_ENDPOINT_URL="http://127.0.0.1:9"), target)
    line = assert_refused(proc, needle)
    assert "\n" not in line.strip()
    assert not list(tmp_path.iterdir())
    with pg.connect(app_db) as conn:
        assert targets_recorded(conn) == set()


def test_every_spelling_of_a_folder_is_one_target(pg: Server, app_db: str, tmp_path: Path) -> None:
    """Issue case 3: a folder named through a relative path, file://, a trailing slash or a
    symbolic link is one target with one set of watermarks."""
    folder = tmp_path / "lake"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        spellings = [str(folder), f"file://{folder}", f"{folder}/", str(tmp_path / "link")]
        for i, spelling in enumerate(spellings):
            h.add_users(conn, 2, prefix=f"spelling{i}")
            proc = h.run_cli(env, "run", "--target", spelling, *RUN)
            assert proc.returncode == 0, proc.stderr
        assert targets_recorded(conn) == {str(folder.resolve())}
    h.assert_exact(str(folder), pg, app_db)


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder on a file system other than the temporary folder's: a tmpfs mounted for the
    test, or /dev/shm; skipped where neither is possible."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == Path(tempfile.gettempdir()).stat().st_dev:
            pytest.skip("no second file system: cannot mount a tmpfs, and no /dev/shm")
        mount = Path(tempfile.mkdtemp(dir=shm))
    try:
        yield mount
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        else:
            subprocess.run(["rm", "-rf", str(mount)], check=False)


def test_a_target_on_another_file_system(pg: Server, app_db: str, other_file_system: Path) -> None:
    """Issue case 4: staging and target on different file systems: the run completes, and a
    delta after it too."""
    assert other_file_system.stat().st_dev != Path(tempfile.gettempdir()).stat().st_dev
    target = str(other_file_system / "lake")
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 20))
        first = run(env, target)
        assert first.returncode == 0, first.stderr
        h.add_watching(conn, h.add_users(conn, 5, prefix="delta"), score=9)
        conn.execute("delete from app.ratings where score = 8 and user_id % 2 = 0")
        second = run(env, target)
        assert second.returncode == 0, second.stderr
        assert conn.execute(
            "select count(*) from etl.export_runs where status = 'pending'"
        ).fetchone() == (0,)
    h.assert_exact(target, pg, app_db)


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_chunk_size_is_refused_before_a_run_is_recorded(
    pg: Server, app_db: str, tmp_path: Path, value: str
) -> None:
    """Issue case 12: a bad ANIMEDB_EXPORT_CHUNK_ROWS leaves no pending run to block others."""
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db, ANIMEDB_EXPORT_CHUNK_ROWS=value)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 3)
        assert_refused(run(env, target), "ANIMEDB_EXPORT_CHUNK_ROWS")
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
    other = run(h.exporter_env(pg, app_db), str(tmp_path / "other"))
    assert other.returncode == 0, other.stderr


def test_a_refused_concurrent_run_leaves_nothing_in_its_target(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """Issue case 12: a run refused because another one holds the lock creates no catalog (nor
    folder) in its target."""
    target = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (protocol.LOCK_KEY,))
        proc = run(h.exporter_env(pg, app_db), str(target))
        assert proc.returncode != 0
        assert "another exporter is running" in proc.stderr
    assert not target.exists()
    assert not list(tmp_path.iterdir())
