"""`report`: one self-contained HTML page about a lake (charts as inline SVG, nothing fetched):
rows per table per run, how far each run's bound trailed its commit, the activity the runs
carried by kind (inserts, updates and deletes of users, wishlist entries and ratings), and
wishlist statuses and rating scores as the lake has them now.

It reads only the lake's Iceberg tables: the runs are the run-<id> tags of the change logs,
rows and lag come from the summaries of the snapshots the runs made, activity from the change
logs' rows, and the latest state from the current-state tables. A run the exporter has not
finished yet shows with the tables it has committed so far.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from exporter import duck, iceberg, lake
from exporter.errors import ExportError
from exporter.tables import TOMBSTONES

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
ACTIVITY_TABLES = ("app.users", "app.wishlist", "app.ratings")
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
    snapshot = iceberg.run_snapshot(table, run)
    summary = _summary(snapshot)
    return summary if summary.get(iceberg.RUN_ID) == str(run) else None


def _runs_and_rows(pairs: list[iceberg.Pair], facts: LakeFacts) -> None:
    """Runs, rows per table per run, bytes, and each run's lag: the latest commit among the
    snapshots it made, less its bound."""
    runs: set[int] = set()
    committed_ms: dict[int, int] = {}
    bounds: dict[int, dt.datetime] = {}
    for pair in pairs:
        tagged = iceberg.tagged_runs(pair.changes)
        runs.update(tagged)
        rows = facts.rows.setdefault(pair.source, {})
        for run in tagged:
            summary = _own_snapshot(pair.changes, run)
            rows[run] = int(summary.get("added-records", 0)) if summary else 0
        for table in (pair.changes, pair.current):
            facts.bytes_total += int(_summary(table.current_snapshot()).get("total-files-size", 0))
            for snapshot in table.snapshots():
                summary = _summary(snapshot)
                if not summary.get(iceberg.RUN_ID, "").isdigit():
                    continue
                run = int(summary[iceberg.RUN_ID])
                committed_ms[run] = max(committed_ms.get(run, 0), snapshot.timestamp_ms)
                if iceberg.BOUND_TIME in summary:
                    bounds[run] = dt.datetime.fromisoformat(summary[iceberg.BOUND_TIME])
    facts.runs = sorted(runs)
    for run in facts.runs:
        if run in committed_ms and run in bounds:
            committed = dt.datetime.fromtimestamp(committed_ms[run] / 1000, dt.UTC)
            facts.lag_seconds[run] = (committed - bounds[run]).total_seconds()


def _rows_of(
    con: duckdb.DuckDBPyConnection, target: lake.Lake, table: Table, select: str, name: str
) -> None:
    """verify's reader of a table's current rows, its failures in one line naming the file."""
    try:  # a damaged manifest list is named by iceberg.live_files
        iceberg.current_rows(con, target, table, select, name)
    except duckdb.Error as exc:
        raise ExportError(
            f"cannot read the data files of table {_name(table)}: {duck.first_line(exc)}"
        ) from exc


def _activity(
    con: duckdb.DuckDBPyConnection, target: lake.Lake, pair: iceberg.Pair, facts: LakeFacts
) -> None:
    """A table's row versions per run, by kind: an insert is the first version of its key,
    an update a version of a key an earlier run had, a delete a `_deleted` row."""
    key = pair.changes.properties[iceberg.KEY_COLUMN]
    _rows_of(
        con,
        target,
        pair.changes,
        f'"{key}" as k, {iceberg.RUN_COLUMN} as run, {iceberg.DELETED_COLUMN} as deleted',
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
    target: lake.Lake,
    by_source: dict[str, iceberg.Pair],
    facts: LakeFacts,
) -> None:
    """Wishlist statuses and rating scores of the current-state tables."""
    if "app.wishlist" in by_source:
        _rows_of(con, target, by_source["app.wishlist"].current, "status", "wishlist_now")
        facts.statuses = [
            (str(s), int(n))
            for s, n in con.execute(
                "select status, count(*) from wishlist_now group by 1 order by 2 desc, 1"
            ).fetchall()
        ]
    if "app.ratings" in by_source:
        _rows_of(con, target, by_source["app.ratings"].current, "score", "ratings_now")
        facts.scores = [
            (int(s), int(n))
            for s, n in con.execute(
                "select score, count(*) from ratings_now where score is not null"
                " group by 1 order by 1"
            ).fetchall()
        ]


def _no_runs(target: lake.Lake) -> ExportError:
    return ExportError(f"{target.uri} holds no committed run yet: export to it first")


def collect(target_uri: str, catalog: str | None = None, namespace: str | None = None) -> LakeFacts:
    """The facts the page shows, from the lake's Iceberg tables alone."""
    target = lake.open_lake(target_uri)
    if not target.is_s3 and not Path(target.uri).is_dir():
        raise _no_runs(target)
    if target.list_files(target.location(lake.OLD_LAYOUT_MARKER), limit=1):
        raise ExportError(
            f"{target.uri} holds a lake of the earlier plain-Parquet layout (_manifests/), "
            "which the report does not read: export to a new, empty target"
        )
    house = iceberg.open_house(target, catalog, namespace)
    pairs = iceberg.pairs(house)
    facts = LakeFacts(target.uri, house.catalog_name, house.namespace)
    _runs_and_rows(pairs, facts)
    if not facts.runs:
        raise _no_runs(target)
    by_source = {p.source: p for p in pairs}
    access = target.s3_access()
    con = duck.connect(with_httpfs=access is not None)
    try:
        if access is not None:
            duck.use_s3(con, access)
        for source in ACTIVITY_TABLES:
            if source in by_source:
                _activity(con, target, by_source[source], facts)
        _latest_state(con, target, by_source, facts)
    except duckdb.Error as exc:
        raise ExportError(f"cannot read the lake at {target.uri}: {duck.first_line(exc)}") from exc
    finally:
        con.close()
    return facts


# --- drawing -------------------------------------------------------------------------------


def _bars(
    series: dict[str, dict[int, int]], runs: list[int], *, width: int = 760, height: int = 260
) -> str:
    """Stacked bars, one per run, one colour per series."""
    totals = [sum(s.get(r, 0) for s in series.values()) for r in runs]
    top = max([*totals, 1])
    left, bottom, plot_h = 56, 24, height - 44
    step = (width - left - 10) / max(len(runs), 1)
    bar = max(step * 0.7, 2)
    parts = [_axis(left, bottom, width, height, top)]
    for i, run in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        y = float(height - bottom)
        for j, (name, values) in enumerate(series.items()):
            value = values.get(run, 0)
            h = plot_h * value / top
            if h > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{PALETTE[j % len(PALETTE)]}"><title>run {run}: {html.escape(name)} '
                    f"{value:,}</title></rect>"
                )
            y -= h
        if len(runs) <= 30 or i % max(len(runs) // 15, 1) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 6}" class="tick">{run}</text>')
    return _svg(width, height, parts) + _legend(list(series))


def _line(values: dict[int, float], *, unit: str, width: int = 760, height: int = 220) -> str:
    """A line through one point per run that has a value, in run order."""
    runs = sorted(values)
    top = max([*values.values(), 0.001])
    left, bottom, plot_h = 56, 24, height - 44
    step = (width - left - 10) / max(len(runs) - 1, 1)
    points = [
        (left + i * step, height - bottom - plot_h * values[r] / top) for i, r in enumerate(runs)
    ]
    parts = [_axis(left, bottom, width, height, top, unit=unit)]
    parts.append(
        '<polyline fill="none" stroke="#4e79a7" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + '"/>'
    )
    for (x, y), r in zip(points, runs, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#4e79a7">'
            f"<title>run {r}: {values[r]:.2f}{unit}</title></circle>"
        )
    return _svg(width, height, parts)


def _hbars(items: list[tuple[str, int]], *, width: int = 760) -> str:
    top = max([n for _, n in items] + [1])
    height = 24 * len(items) + 10
    parts = []
    for i, (label, n) in enumerate(items):
        w = (width - 200) * n / top
        y = 6 + 24 * i
        parts.append(f'<text x="150" y="{y + 14}" class="label">{html.escape(label)}</text>')
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="160" y="{y}" width="{w:.1f}" height="18" fill="{colour}"/>')
        parts.append(
            f'<text x="{165 + w:.1f}" y="{y + 14}" class="tick" text-anchor="start">{n:,}</text>'
        )
    return _svg(width, height, parts)


def _axis(left: int, bottom: int, width: int, height: int, top: float, unit: str = "") -> str:
    y0 = height - bottom
    lines = [f'<line x1="{left}" y1="{y0}" x2="{width - 5}" y2="{y0}" class="axis"/>']
    for frac in (0.5, 1.0):
        y = y0 - (height - 44) * frac
        lines.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 5}" y2="{y:.1f}" class="grid"/>')
        value = top * frac
        text = f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
        lines.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="label">{text}{unit}</text>')
    return "".join(lines)


def _svg(width: int, height: int, parts: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _legend(names: list[str]) -> str:
    return (
        '<p class="legend">'
        + " ".join(
            f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(n)}</span>'
            for i, n in enumerate(names)
        )
        + "</p>"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:820px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
.axis{stroke:#888}.grid{stroke:#eee}.label{font-size:11px;text-anchor:end;fill:#555}
.tick{font-size:10px;text-anchor:middle;fill:#555}.legend span{margin-right:1rem;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;font-size:12px;margin-top:.5rem}td,th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}
"""


def render(facts: LakeFacts) -> str:
    runs = facts.runs
    # the user tables one by one, the catalog's (which move only with a crawl) as one series
    busy: dict[str, dict[int, int]] = {"catalog": defaultdict(int)}
    for table, values in sorted(facts.rows.items()):
        if table in (*ACTIVITY_TABLES, TOMBSTONES):
            busy[table] = values
        else:
            for run, n in values.items():
                busy["catalog"][run] += n
    per_table_rows = [
        [
            t,
            *(f"{facts.rows[t].get(r, 0):,}" for r in runs[-8:]),
            f"{sum(facts.rows[t].values()):,}",
        ]
        for t in sorted(facts.rows)
    ]
    activity = {k: v for k, v in facts.activity.items() if sum(v.values())}
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    total_rows = sum(sum(v.values()) for v in facts.rows.values())
    sections = [
        f"<h1>Lake report</h1><p>{html.escape(facts.target)} (catalog "
        f"{html.escape(facts.catalog)}, namespace {html.escape(facts.namespace)}) — "
        f"{len(runs)} committed runs ({runs[0]} to {runs[-1]}), {total_rows:,} row versions and "
        f"deletes in the change logs, {facts.bytes_total / 1e6:,.1f} MB of Parquet in the "
        f"tables' live files. Generated {generated}.</p>",
        "<h2>Rows per table per run</h2><p>Rows each run added to a table's change log "
        "(versions and deletes), from the summary of the snapshot it made.</p>",
        _bars(busy, runs),
        _table(["table", *(f"run {r}" for r in runs[-8:]), "all runs"], per_table_rows),
        "<h2>Watermark lag over runs</h2><p>Seconds between a run's bound (the moment of the "
        "source it copies) and the commit of the last snapshot it made; a run that changed no "
        "table made none and has no point.</p>",
        _line(facts.lag_seconds, unit=" s") if facts.lag_seconds else "<p>No snapshots yet.</p>",
        "<h2>Activity by kind, per run</h2><p>Rows each run brought to the users' tables' "
        "change logs: inserts (the first version of a key), updates (a key an earlier run "
        "had) and deletes.</p>",
        _bars(activity, runs) if activity else "<p>No activity yet.</p>",
    ]
    if facts.statuses:
        sections += ["<h2>Wishlist entries by status (latest state)</h2>", _hbars(facts.statuses)]
    if facts.scores:
        sections += [
            "<h2>Ratings by score (latest state)</h2>",
            _hbars([(f"score {s}", n) for s, n in facts.scores]),
        ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Lake report</title><style>{STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_report(
    target: str, output: Path, *, catalog: str | None = None, namespace: str | None = None
) -> Path:
    """Collect the lake's facts and write the page, atomically; returns its path."""
    page = render(collect(target, catalog, namespace))
    staged = output.with_name(f".{output.name}.tmp")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(page, encoding="utf-8")
        staged.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staged.unlink(missing_ok=True)
        raise ExportError(
            f"cannot write the report to {output}: {exc.strerror or exc} "
            "(choose a writable place with --output)"
        ) from exc
    return output
