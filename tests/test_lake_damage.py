"""Damage is named in one line, never a traceback: corrupted metadata, tampered files, the
plain-Parquet layout of earlier versions."""

from __future__ import annotations

from pathlib import Path

from pyiceberg.table import Table

from exporter import catalog, live, run_export
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import file_hashes, flip_bytes, lake_tables, local, open_tables
from tests.pg_harness import Server


def test_corrupted_metadata_is_named(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5)
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        h.add_users(conn, 2, prefix="news")  # the next run must commit to users
    metadata = Path(local(lake_tables(env, target)["app.users"]["current"]["metadata_location"]))
    assert metadata.is_file()
    metadata.write_text("{ this is not the metadata of any table")

    for args in (
        ("verify", "--target", target),
        ("report", "--target", target, "--output", str(tmp_path / "r.html")),
        ("run", "--target", target, "--settle", "0"),
        ("maintain", "--target", target),
    ):
        line = h.assert_refused(h.run_cli(env, *args))
        assert "animedb.users" in line or str(metadata) in line, (args, line)
    assert not (tmp_path / "r.html").exists()


def test_tampered_files_are_named(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 20)
        h.add_watching(conn, users[:10])
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'new' where user_id = %s", (users[0],))
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)  # a position-delete file
    assert h.run_cli(env, "verify", "--target", target).returncode == 0
    pairs = open_tables(target)
    users_files = live.live_files(pairs["app.users"].current)
    assert len(users_files.data) == 2 and len(users_files.deletes) == 1

    def first_file(table: Table) -> Path:
        return Path(local(live.live_files(table).data[0].file_path))

    damaged = {
        "flipped": Path(local(users_files.data[0].file_path)),
        "flipped delete file": Path(local(users_files.deletes[0].file_path)),
        "truncated": first_file(pairs["app.wishlist"].changes),
        "missing": first_file(pairs["app.ratings"].current),
    }
    for how, path in damaged.items():
        original = path.read_bytes()
        if how.startswith("flipped"):
            flip_bytes(path)
        elif how == "truncated":
            path.write_bytes(original[: len(original) // 2])
        else:
            path.unlink()
        proc = h.run_cli(env, "verify", "--target", target)
        line = h.assert_refused(proc, str(path))
        if how == "missing":
            assert "missing" in line
        path.write_bytes(original)  # one damage at a time: each is named by itself
    assert h.run_cli(env, "verify", "--target", target).returncode == 0


def test_a_lake_of_the_old_layout_is_refused(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = tmp_path / "lake"
    (target / "_manifests").mkdir(parents=True)
    (target / "_manifests" / "000000000001.json").write_text('{"run_id": 1, "tables": {}}')
    before = file_hashes(target)

    proc = h.run_cli(pg.env(app_db), "run", "--target", str(target), "--settle", "0")
    line = h.assert_refused(proc, "_manifests")
    assert "new" in line and "target" in line

    assert file_hashes(target) == before
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == [
        Path("_manifests"),
        Path("_manifests/000000000001.json"),
    ]
    assert not (target / catalog.LOCAL_CATALOG_FILE).exists()
    with pg.connect(app_db) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
