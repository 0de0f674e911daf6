"""`report`: one self-contained HTML page about a lake (charts as inline SVG, nothing fetched):
rows per table per run, how far each run's bound trailed its commit, the activity the runs
carried by kind (inserts, updates and deletes of users, wishlist entries and ratings), and
wishlist statuses and rating scores as the lake has them now.

It reads only the lake's Iceberg tables: the runs are the run-<id> tags of the change logs,
rows and lag come from the summaries of the snapshots the runs made, activity from the change
logs' rows, and the latest state from the current-state tables. A run the exporter has not
finished yet shows with the tables it has committed so far.

The page is the Jinja2 template templates/report.html.j2, autoescaped, so a name or value
from the lake is always text. The charts are SVG drawn by that template from the geometry
computed here, and not a plotting library's, because none gives this page what it needs
for less: matplotlib writes static SVG (a value on hover would mean editing its output) and
brings numpy and tens of MB with it; plotly and bokeh draw in the browser with a script of
megabytes, to inline into every page for it to read offline; pygal's tooltips are a script
it fetches from the web. Three kinds of chart with a `<title>` on every mark (the browser
shows it on hover, no script) are a hundred lines here. The report never runs on Lambda
(the handler imports exporter.run, not this), so jinja2 is not in the exporter's layer.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from animedb.files import atomic_write
from animedb.vocabulary import WRITTEN_TABLES
from exporter import catalog, duck, layout, live, snapshots
from exporter.errors import ExportError, first_line
from exporter.sqltext import identifier
from exporter.storage import Storage, open_storage, storage_errors
from exporter.tables import TOMBSTONES

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
KINDS = ("inserted", "updated", "deleted")


@dataclass
class LakeFacts:
    target: str
    catalog: str
    namespace: str
    runs: list[int] = field(default_factory=list)
    rows: dict[str, dict[int, int]] = field(default_factory=dict)  # table -> run -> rows
    lag_seconds: dict[int, float] = field(default_factory=dict)  # run -> committed - bound
    activity: dict[str, dict[int, int]] = field(default_factory=dict)  # kind -> run -> rows
    bytes_total: int = 0
    statuses: list[tuple[str, int]] = field(default_factory=list)
    scores: list[tuple[int, int]] = field(default_factory=list)


def _name(table: Table) -> str:
    return ".".join(table.name())


def _summary(snapshot: Snapshot | None) -> dict[str, str]:
    if snapshot is None or snapshot.summary is None:
        return {}
    return dict(snapshot.summary.additional_properties)


def _own_snapshot(table: Table, run: int) -> dict[str, str] | None:
    """The summary of the snapshot the run made in the table; None when the run left the
    table unchanged (its tag then marks an earlier run's snapshot)."""
    snapshot = snapshots.run_snapshot(table, run)
    summary = _summary(snapshot)
    return summary if summary.get(layout.RUN_ID) == str(run) else None


def _runs_and_rows(pairs: list[catalog.Pair], facts: LakeFacts) -> None:
    """Runs, rows per table per run, bytes, and each run's lag: the latest commit among the
    snapshots it made, less its bound. A run shows when it changed some table; a table it did
    not change has no snapshot of it (0 rows)."""
    committed_ms: dict[int, int] = {}
    bounds: dict[int, dt.datetime] = {}
    tagged = {pair.source: snapshots.tagged_runs(pair.changes) for pair in pairs}
    runs = {run for found in tagged.values() for run in found}
    for pair in pairs:
        rows = facts.rows.setdefault(pair.source, {})
        for run in sorted(runs):
            summary = _own_snapshot(pair.changes, run) if run in tagged[pair.source] else None
            rows[run] = int(summary.get("added-records", 0)) if summary else 0
        for table in (pair.changes, pair.current):
            facts.bytes_total += int(_summary(table.current_snapshot()).get("total-files-size", 0))
            for snapshot in table.snapshots():
                summary = _summary(snapshot)
                if not summary.get(layout.RUN_ID, "").isdigit():
                    continue
                run = int(summary[layout.RUN_ID])
                committed_ms[run] = max(committed_ms.get(run, 0), snapshot.timestamp_ms)
                if layout.BOUND_TIME in summary:
                    bounds[run] = dt.datetime.fromisoformat(summary[layout.BOUND_TIME])
    facts.runs = sorted(runs)
    for run in facts.runs:
        if run in committed_ms and run in bounds:
            committed = dt.datetime.fromtimestamp(committed_ms[run] / 1000, dt.UTC)
            facts.lag_seconds[run] = (committed - bounds[run]).total_seconds()


def _rows_of(
    con: duckdb.DuckDBPyConnection, target: Storage, table: Table, select: str, name: str
) -> None:
    """verify's reader of a table's current rows, its failures in one line naming the file."""
    try:  # a damaged manifest list is named by live.live_files
        live.current_rows(con, target, table, select, name)
    except duckdb.Error as exc:
        raise ExportError(
            f"cannot read the data files of table {_name(table)}: {first_line(exc)}"
        ) from exc


def _activity(
    con: duckdb.DuckDBPyConnection, target: Storage, pair: catalog.Pair, facts: LakeFacts
) -> None:
    """A table's row versions per run, by kind: an insert is the first version of its key,
    an update a version of a key an earlier run had, a delete a `_deleted` row."""
    key = live.key_column(pair.changes)  # the table's property: checked, then quoted
    _rows_of(
        con,
        target,
        pair.changes,
        f"{identifier(key)} as k, {identifier(layout.RUN_COLUMN)} as run,"
        f" {identifier(layout.DELETED_COLUMN)} as deleted",
        "versions",
    )
    counts = con.execute(
        "select run, count(*) filter (where not deleted and run = first_run),"
        " count(*) filter (where not deleted and run > first_run),"
        " count(*) filter (where deleted)"
        " from (select run, deleted, min(run) filter (where not deleted)"
        " over (partition by k) as first_run from versions)"
        " group by run"
    ).fetchall()
    by_run = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in counts}
    name = pair.source.split(".")[1]
    for i, kind in enumerate(KINDS):
        series = facts.activity.setdefault(f"{name} {kind}", {})
        for run in facts.runs:
            series[run] = by_run.get(run, (0, 0, 0))[i]


def _latest_state(
    con: duckdb.DuckDBPyConnection,
    target: Storage,
    by_source: dict[str, catalog.Pair],
    facts: LakeFacts,
) -> None:
    """Wishlist statuses (the most held first) and rating scores (in order, unscored left out)
    of the current-state tables."""
    if "app.wishlist" in by_source:
        statuses = _tally(con, target, by_source["app.wishlist"].current, "status", "2 desc, 1")
        facts.statuses = [(str(s), n) for s, n in statuses]
    if "app.ratings" in by_source:
        scores = _tally(con, target, by_source["app.ratings"].current, "score", "1", skip_null=True)
        facts.scores = [(int(s), n) for s, n in scores]


def _tally(
    con: duckdb.DuckDBPyConnection,
    target: Storage,
    table: Table,
    column: str,
    order: str,
    *,
    skip_null: bool = False,
) -> list[tuple[Any, int]]:
    """How many of the table's current rows hold each value of `column`, ordered by `order`
    (1: the value, 2: the count)."""
    name = f"{column}_tally"
    _rows_of(con, target, table, identifier(column), name)
    where = f" where {identifier(column)} is not null" if skip_null else ""
    rows = con.execute(
        f"select {identifier(column)}, count(*) from {name}{where} group by 1 order by {order}"
    ).fetchall()
    return [(value, int(n)) for value, n in rows]


def _no_runs(target: Storage) -> ExportError:
    return ExportError(f"{target.uri} holds no committed run yet: export to it first")


def collect(
    target_uri: str, catalog_name: str | None = None, namespace: str | None = None
) -> LakeFacts:
    """The facts the page shows, from the lake's Iceberg tables alone."""
    target = open_storage(target_uri)
    if not target.is_s3 and not Path(target.uri).is_dir():
        raise _no_runs(target)
    target.refuse_old_layout("which the report does not read")
    lake = catalog.open_lake(target, catalog_name, namespace)
    pairs = catalog.pairs(lake)
    facts = LakeFacts(target.uri, lake.catalog_name, lake.namespace)
    _runs_and_rows(pairs, facts)
    if not facts.runs:
        raise _no_runs(target)
    by_source = {p.source: p for p in pairs}
    con = duck.connect(s3=target.s3_access())
    try:
        for source in WRITTEN_TABLES:
            if source in by_source:
                _activity(con, target, by_source[source], facts)
        _latest_state(con, target, by_source, facts)
    except duckdb.Error as exc:
        raise ExportError(f"cannot read the lake at {target.uri}: {first_line(exc)}") from exc
    finally:
        con.close()
    return facts


# --- the page ------------------------------------------------------------------------------
# Geometry only: the template (templates/report.html.j2) turns these into SVG and escapes every
# name. Coordinates are rounded to a tenth of a pixel here, so the page stays small.

TABLE_RUNS = 8  # the runs the table of rows shows, the latest


@dataclass(frozen=True)
class Gridline:
    y: float
    label_y: float
    label: str  # the value at that height, with its unit


@dataclass(frozen=True)
class Axis:
    left: int
    right: int
    baseline: int
    gridlines: list[Gridline]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # shown on hover


@dataclass(frozen=True)
class Tick:
    x: float
    y: int
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str  # shown on hover


@dataclass(frozen=True)
class Row:
    """One bar of a horizontal bar chart: its label left of it, its value right of it."""

    label: str
    value: int
    y: int
    width: float
    colour: str
    title: str  # shown on hover
    label_x: int = 150
    x: int = 160
    height: int = 18

    @property
    def text_y(self) -> int:
        return self.y + 14

    @property
    def value_x(self) -> float:
        return round(self.x + 5 + self.width, 1)


@dataclass(frozen=True)
class LegendEntry:
    name: str
    colour: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    axis: Axis | None = None
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)  # joined by a line, in order
    rows: list[Row] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)
    colour: str = PALETTE[0]  # of the line and its points


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _axis(left: int, bottom: int, width: int, height: int, top: float, unit: str = "") -> Axis:
    """The baseline and gridlines at half and all of `top`, labelled with their values."""
    baseline = height - bottom
    gridlines = []
    for frac in (0.5, 1.0):
        y = baseline - (height - 44) * frac
        value = top * frac
        text = f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
        gridlines.append(Gridline(round(y, 1), round(y + 4, 1), text + unit))
    return Axis(left, width - 5, baseline, gridlines)


def bars(
    series: dict[str, dict[int, int]], runs: list[int], *, width: int = 760, height: int = 260
) -> Chart:
    """Stacked bars, one per run, one colour per series; a run is labelled below its bar
    (every run up to 30, about 15 of them beyond)."""
    totals = [sum(s.get(r, 0) for s in series.values()) for r in runs]
    top = max([*totals, 1])
    left, bottom, plot_h = 56, 24, height - 44
    step = (width - left - 10) / max(len(runs), 1)
    bar = max(step * 0.7, 2)
    chart = Chart(width, height, _axis(left, bottom, width, height, top))
    for i, run in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        y = float(height - bottom)
        for j, (name, values) in enumerate(series.items()):
            value = values.get(run, 0)
            h = plot_h * value / top
            if h > 0:
                chart.bars.append(
                    Bar(
                        round(x, 1),
                        round(y - h, 1),
                        round(bar, 1),
                        round(h, 1),
                        _colour(j),
                        f"run {run}: {name} {value:,}",
                    )
                )
            y -= h
        if len(runs) <= 30 or i % max(len(runs) // 15, 1) == 0:
            chart.ticks.append(Tick(round(x + bar / 2, 1), height - 6, str(run)))
    chart.legend.extend(LegendEntry(name, _colour(j)) for j, name in enumerate(series))
    return chart


def line(values: dict[int, float], *, unit: str, width: int = 760, height: int = 220) -> Chart:
    """A line through one point per run that has a value, in run order."""
    runs = sorted(values)
    top = max([*values.values(), 0.001])
    left, bottom, plot_h = 56, 24, height - 44
    step = (width - left - 10) / max(len(runs) - 1, 1)
    chart = Chart(width, height, _axis(left, bottom, width, height, top, unit=unit))
    for i, run in enumerate(runs):
        y = height - bottom - plot_h * values[run] / top
        chart.points.append(
            Point(round(left + i * step, 1), round(y, 1), f"run {run}: {values[run]:.2f}{unit}")
        )
    return chart


def hbars(items: list[tuple[str, int]], *, width: int = 760) -> Chart:
    """One horizontal bar per (label, count), in the order given."""
    top = max([n for _, n in items] + [1])
    chart = Chart(width, 24 * len(items) + 10)
    for i, (label, n) in enumerate(items):
        w = (width - 200) * n / top
        chart.rows.append(Row(label, n, 6 + 24 * i, round(w, 1), _colour(i), f"{label}: {n:,}"))
    return chart


@dataclass(frozen=True)
class TableRow:
    table: str
    cells: list[int]  # rows of each of the runs the table shows
    total: int  # of all runs


def _series_by_table(facts: LakeFacts) -> dict[str, dict[int, int]]:
    """The user tables one by one, the catalog's (which move only with a crawl) as one series."""
    busy: dict[str, dict[int, int]] = {"catalog": defaultdict(int)}
    for table, values in sorted(facts.rows.items()):
        if table in (*WRITTEN_TABLES, TOMBSTONES):
            busy[table] = values
        else:
            for run, n in values.items():
                busy["catalog"][run] += n
    return busy


def _number(value: float, spec: str = ",") -> str:
    """The template's `number` filter: 12,345 by default, any format spec given."""
    return format(value, spec)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("exporter", "templates"),
        autoescape=True,  # names and values come from the lake: text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["number"] = _number
    return environment.get_template("report.html.j2")


def render(facts: LakeFacts) -> str:
    """The page of these facts."""
    runs = facts.runs
    shown = runs[-TABLE_RUNS:]
    activity = {k: v for k, v in facts.activity.items() if sum(v.values())}
    return _template().render(
        facts=facts,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        total_rows=sum(sum(v.values()) for v in facts.rows.values()),
        rows_chart=bars(_series_by_table(facts), runs),
        table_runs=shown,
        table_rows=[
            TableRow(t, [facts.rows[t].get(r, 0) for r in shown], sum(facts.rows[t].values()))
            for t in sorted(facts.rows)
        ],
        lag_chart=line(facts.lag_seconds, unit=" s") if facts.lag_seconds else None,
        activity_chart=bars(activity, runs) if activity else None,
        status_chart=hbars(facts.statuses) if facts.statuses else None,
        score_chart=hbars([(f"score {s}", n) for s, n in facts.scores]) if facts.scores else None,
    )


def write_report(
    target: str, output: Path, *, catalog: str | None = None, namespace: str | None = None
) -> Path:
    """Collect the lake's facts and write the page, atomically; returns its path. AWS
    failures (S3, Glue) raise ExportError with one line, as every other failure does."""
    with storage_errors(target):
        page = render(collect(target, catalog, namespace))
    try:
        atomic_write(output, page.encode("utf-8"))
    except OSError as exc:
        raise ExportError(
            f"cannot write the report to {output}: {exc.strerror or exc} "
            "(choose a writable place with --output)"
        ) from exc
    return output
