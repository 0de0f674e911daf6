"""The lake report: an HTML page with charts, made from the lake's Iceberg tables alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from exporter import RunSummary, report, run_export
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import open_lake
from tests.pg_harness import Server

SVG = "{http://www.w3.org/2000/svg}"


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
    return h.assert_refused(h.run_cli(env, "report", "--target", target))


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
    settings = pg.settings(app_db)
    first = run_export(target, settings, settle=NO_SETTLE, namespace="mirror")
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 2)
    second = run_export(target, settings, settle=NO_SETTLE, namespace="mirror")
    idle = run_export(target, settings, settle=NO_SETTLE, namespace="mirror")
    assert idle.rows == 0 and not any(t.committed for t in idle.tables)  # no commit at all
    env = h.exporter_env(pg, app_db)
    output = tmp_path / "mirror.html"
    proc = h.run_cli(
        env, "report", "--target", target, "--namespace", "mirror", "--output", str(output)
    )
    assert proc.returncode == 0, proc.stderr
    page = output.read_text(encoding="utf-8")
    assert "namespace mirror" in page and f"{first.run_id} to {second.run_id}" in page
    assert page_table(page)["app.anime"] == ["5", "0", "5"]
    assert page_table(page)["app.users"] == ["0", "2", "2"]
    # the idle run changed nothing: the lake does not know it (no snapshot, no lag point)
    assert re.findall(r"<title>run (\d+): [\d.]+ s</title>", page) == [
        str(first.run_id),
        str(second.run_id),
    ]
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
    lake = open_lake(target)
    wishlist_log = lake.catalog.load_table(lake.identifier("wishlist_changes"))
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


# --- the page alone, from facts made up here ---------------------------------------------------


def made_up_facts(names: dict[str, str] | None = None, runs: int = 3) -> report.LakeFacts:
    """Facts of a lake of `runs` runs; `names` replaces any of: target, catalog, namespace,
    table (an exported table's name), series (an activity series) and status."""
    names = names or {}
    table = names.get("table", "app.anime")
    facts = report.LakeFacts(
        names.get("target", "/lake"),
        names.get("catalog", "animedb"),
        names.get("namespace", "animedb"),
        runs=list(range(1, runs + 1)),
    )
    facts.rows = {
        table: {r: 5 if r == 1 else 0 for r in facts.runs},
        "app.users": {r: 10 * r for r in facts.runs},
        "app.ratings": {r: r % 2 for r in facts.runs},
    }
    facts.lag_seconds = {r: 1.25 * r for r in facts.runs if r != 2}
    facts.activity = {
        names.get("series", "users inserted"): {r: 10 for r in facts.runs},
        "users updated": {r: 0 for r in facts.runs},
        "ratings deleted": {r: r for r in facts.runs},
    }
    facts.statuses = [("watching", 30), (names.get("status", "dropped"), 10)]
    facts.scores = [(7, 2), (9, 12)]
    return facts


class _Page(HTMLParser):
    """The elements and the text of a page, as a browser parses it."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[str] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def charts(page: str) -> list[ET.Element]:
    """Each SVG of the page, parsed as XML (so each is well-formed)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.DOTALL)]


def test_hostile_names_and_values_in_the_lake_come_out_as_text() -> None:
    hostile = {
        "target": '/lake/"><script>alert("target")</script>',
        "catalog": "<img src=x onerror=alert(1)>",
        "namespace": "ns' onmouseover='alert(2)",
        "table": "app.<script>alert(3)</script>",
        "series": "<svg onload=alert(4)>",
        "status": "</text><script>alert(5)</script>",
    }
    page = report.render(made_up_facts(hostile))
    parsed = _Page(page)
    assert parsed.tags <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead",
        "tbody", "tr", "th", "td", "span", "i", "svg", "line", "text", "rect", "circle",
        "polyline",
    }  # fmt: skip
    assert not [a for a in parsed.attributes if a.startswith("on")]
    text = "".join(parsed.text)
    for value in hostile.values():
        assert value in text  # shown as it is, escaped on the way
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert len(charts(page)) == 5  # the hostile label broke no chart


def test_every_value_a_chart_draws_shows_on_hover() -> None:
    facts = made_up_facts(runs=3)
    page = report.render(facts)
    rows, lag, activity, statuses, scores = charts(page)

    def titles(svg: ET.Element, mark: str) -> list[str]:
        marks = svg.findall(f"{SVG}{mark}")
        found = [m.findtext(f"{SVG}title") for m in marks]
        assert None not in found, mark  # every mark has its title
        return [t for t in found if t is not None]

    # stacked bars: one per series and run that has rows (the catalog's tables as one series)
    assert titles(rows, "rect") == [
        "run 1: catalog 5", "run 1: app.ratings 1", "run 1: app.users 10",
        "run 2: app.users 20",
        "run 3: app.ratings 1", "run 3: app.users 30",
    ]  # fmt: skip
    assert titles(lag, "circle") == ["run 1: 1.25 s", "run 3: 3.75 s"]  # run 2 has no point
    assert "run 2: users updated" not in page  # a series without rows is left out
    assert titles(activity, "rect") == [
        "run 1: users inserted 10", "run 1: ratings deleted 1",
        "run 2: users inserted 10", "run 2: ratings deleted 2",
        "run 3: users inserted 10", "run 3: ratings deleted 3",
    ]  # fmt: skip
    assert titles(statuses, "rect") == ["watching: 30", "dropped: 10"]
    assert titles(scores, "rect") == ["score 7: 2", "score 9: 12"]


def test_bars_stack_to_the_tallest_run() -> None:
    chart = report.bars({"a": {1: 1, 2: 3}, "b": {1: 1, 2: 0}}, [1, 2])
    assert chart.axis is not None and chart.axis.baseline == 236
    assert [g.label for g in chart.axis.gridlines] == ["1.50", "3.00"]
    first, second = [b for b in chart.bars if b.x == chart.bars[0].x], chart.bars[2:]
    assert [b.height for b in first] == [72.0, 72.0] and first[1].y + 72 == first[0].y
    [tallest] = second  # b's 0 draws nothing
    assert (tallest.y, tallest.height) == (20.0, 216.0)  # the full plot height
    assert [t.label for t in chart.ticks] == ["1", "2"]
    assert [e.name for e in chart.legend] == ["a", "b"]
    many = report.bars({"a": dict.fromkeys(range(40), 1)}, list(range(40)))
    assert len(many.bars) == 40 and len(many.ticks) == 20  # every other run labelled


def test_line_and_horizontal_bars_scale_to_their_largest_value() -> None:
    chart = report.line({3: 2.0, 1: 4.0}, unit=" s")
    assert [(p.x, p.y, p.title) for p in chart.points] == [
        (56.0, 20.0, "run 1: 4.00 s"),
        (750.0, 108.0, "run 3: 2.00 s"),
    ]
    assert chart.axis is not None
    assert [g.label for g in chart.axis.gridlines] == ["2.00 s", "4.00 s"]
    rows = report.hbars([("watching", 1_500), ("dropped", 750)])
    assert [(r.width, r.value_x, r.title) for r in rows.rows] == [
        (560.0, 725.0, "watching: 1,500"),
        (280.0, 445.0, "dropped: 750"),
    ]
    assert rows.height == 58
