"""The lake report: an HTML page with charts, made from the lake's Iceberg tables alone."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from exporter import RunSummary, iceberg, lake, run_export
from tests import exporter_helpers as h
from tests.pg_harness import Server

NO_SETTLE = dt.timedelta(0)


def page_table(page: str) -> dict[str, list[str]]:
    """The rows-per-table table of the page: table name -> its cells."""
    rows = re.findall(r"<tr><td>([a-z_.]+)</td>(.*?)</tr>", page)
    return {name: re.findall(r"<td>([^<]*)</td>", cells) for name, cells in rows}


def exported(summary: RunSummary, table: str) -> int:
    """What a run added to a table's change log: its row versions and its deletes."""
    [result] = [t for t in summary.tables if t.table == table]
    return result.rows + result.deletes


def report_error(env: dict[str, str], target: str) -> str:
    """The report's refusal: exit 1 and exactly one line."""
    proc = h.run_cli(env, "report", "--target", target)
    assert proc.returncode == 1, proc.stdout
    [line] = proc.stderr.strip().splitlines()
    return line


def test_report_of_a_lake(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        first = run_export(target, settings, settle=NO_SETTLE)
        users = h.add_users(conn, 7)
        h.add_watching(conn, users[:3], score=9)
        conn.execute("delete from app.ratings where user_id = %s", (users[0],))
        second = run_export(target, settings, settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'edited' where user_id = any(%s)", (users[:2],))
        third = run_export(target, settings, settle=NO_SETTLE)
    runs = [first, second, third]
    proc = h.run_cli(h.exporter_env(pg, app_db), "report", "--target", target)
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "lake-report.html"
    assert f"report written to {written}" in proc.stdout
    page = written.read_text(encoding="utf-8")

    assert f"{first.run_id} to {third.run_id}" in page and "3 committed runs" in page
    assert "namespace animedb" in page
    # the table's numbers are the runs' own, for every exported table (run 3 left ratings alone)
    table = page_table(page)
    assert set(table) == {t.table for t in first.tables}
    for name, cells in table.items():
        per_run = [exported(run, name) for run in runs]
        assert cells == [f"{n:,}" for n in per_run] + [f"{sum(per_run):,}"], name
    assert table["app.users"] == ["0", "7", "2", "9"]
    assert table["app.ratings"] == ["0", "3", "0", "3"]  # 2 ratings and 1 delete
    assert f"run {second.run_id}: app.users 7<" in page  # the stacked bar's tooltip

    # every run changed some table, so each has a lag point, its commit after its bound
    lags = dict(re.findall(r"<title>run (\d+): (-?[\d.]+) s</title>", page))
    assert sorted(int(r) for r in lags) == [r.run_id for r in runs]
    assert all(0 <= float(v) < 60 for v in lags.values())

    # activity by kind: new keys, keys an earlier run had, and deletes
    assert f"run {second.run_id}: users inserted 7<" in page
    assert f"run {second.run_id}: wishlist inserted 3<" in page
    assert f"run {second.run_id}: ratings inserted 2<" in page
    assert f"run {second.run_id}: ratings deleted 1<" in page
    assert f"run {third.run_id}: users updated 2<" in page
    assert f"run {third.run_id}: users inserted" not in page

    # the latest state: the current-state tables, the deleted rating gone
    assert re.search(r">watching</text>.*?>3</text>", page)
    assert re.search(r">score 9</text>.*?>2</text>", page)

    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "<script" not in page and "<link" not in page


def test_report_reads_the_namespace_it_is_given(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    first = run_export(target, pg.settings(app_db), settle=NO_SETTLE, namespace="mirror")
    idle = run_export(target, pg.settings(app_db), settle=NO_SETTLE, namespace="mirror")
    assert idle.rows == 0  # it only tags each table's current snapshot
    env = h.exporter_env(pg, app_db)
    output = tmp_path / "mirror.html"
    proc = h.run_cli(
        env, "report", "--target", target, "--namespace", "mirror", "--output", str(output)
    )
    assert proc.returncode == 0, proc.stderr
    page = output.read_text(encoding="utf-8")
    assert "namespace mirror" in page and f"{first.run_id} to {idle.run_id}" in page
    assert page_table(page)["app.anime"] == ["5", "0", "5"]
    # the idle run made no snapshot, so it has no commit time and no lag point
    assert re.findall(r"<title>run (\d+): [\d.]+ s</title>", page) == [str(first.run_id)]
    proc = h.run_cli(env, "report", "--target", target)  # the default namespace has no run
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: {target} holds no committed run yet: export to it first"
    ]


def test_report_of_an_empty_lake_is_one_clear_line(pg: Server, app_db: str, tmp_path: Path) -> None:
    env = h.exporter_env(pg, app_db)
    for target in (tmp_path, tmp_path / "not-there"):
        proc = h.run_cli(env, "report", "--target", str(target))
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            f"Error: {target} holds no committed run yet: export to it first"
        ]


def test_a_damaged_metadata_file_is_named_in_one_line(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 2))
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    house = iceberg.open_house(lake.open_lake(target))
    wishlist_log = house.catalog.load_table(house.identifier("wishlist_changes"))
    snapshot = wishlist_log.current_snapshot()
    assert snapshot is not None
    env = h.exporter_env(pg, app_db)

    manifest_list = Path(snapshot.manifest_list.removeprefix("file://"))
    kept = manifest_list.read_bytes()
    manifest_list.write_bytes(b"not avro")
    line = report_error(env, target)
    assert "animedb.wishlist_changes" in line and str(manifest_list) in line
    manifest_list.unlink()
    line = report_error(env, target)
    assert "animedb.wishlist_changes" in line and str(manifest_list) in line
    manifest_list.write_bytes(kept)

    metadata = Path(wishlist_log.metadata_location.removeprefix("file://"))
    metadata.unlink()
    line = report_error(env, target)
    assert "animedb.wishlist_changes" in line and str(metadata) in line


def test_report_of_an_s3_lake(pg: Server, app_db: str, tmp_path: Path, s3_target: str) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 4), score=7)
        summary = run_export(s3_target, pg.settings(app_db), settle=NO_SETTLE)
    output = tmp_path / "s3.html"
    proc = h.run_cli(
        h.exporter_env(pg, app_db), "report", "--target", s3_target, "--output", str(output)
    )
    assert proc.returncode == 0, proc.stderr
    page = output.read_text(encoding="utf-8")
    assert page_table(page)["app.users"] == ["4", "4"]
    assert f"run {summary.run_id}: users inserted 4<" in page and ">score 7</text>" in page
