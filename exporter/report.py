"""`report`: one self-contained HTML page about a lake (charts as inline SVG, nothing fetched):
rows per table per run, how far each run's bound trailed its commit, and the activity the runs
carried, by kind (inserts, updates and deletes of users, wishlist entries and ratings).
Everything comes from the lake itself: manifests and the Parquet files they list."""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from exporter import duck, lake
from exporter.errors import ExportError

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
ACTIVITY_TABLES = ("app.users", "app.wishlist", "app.ratings")


@dataclass
class LakeFacts:
    target: str
    runs: list[int] = field(default_factory=list)
    rows: dict[str, dict[int, int]] = field(default_factory=dict)  # table -> run -> rows
    lag_seconds: dict[int, float] = field(default_factory=dict)  # run -> written_at - bound
    activity: dict[str, dict[int, int]] = field(default_factory=dict)  # kind -> run -> rows
    bytes_total: int = 0
    statuses: list[tuple[str, int]] = field(default_factory=list)
    scores: list[tuple[int, int]] = field(default_factory=list)


def _paths(target: lake.Lake, manifest: dict[str, Any], table: str) -> list[str]:
    return [
        target.reader_path(f["path"]) for f in manifest["tables"].get(table, {}).get("files", [])
    ]


def _quoted(paths: list[str]) -> str:
    return ", ".join("'" + p.replace("'", "''") + "'" for p in paths)


def collect(target_uri: str) -> LakeFacts:
    target = lake.open_lake(target_uri)
    manifests = lake.committed_manifests(target)
    if not manifests:
        raise ExportError(f"{target.uri} holds no committed run yet: export to it first")
    facts = LakeFacts(target=target.uri)
    access = target.s3_access()
    con = duck.connect(with_httpfs=access is not None)
    if access is not None:
        duck.use_s3(con, access)
    try:
        for manifest in manifests:
            run = int(manifest["run_id"])
            facts.runs.append(run)
            bound = dt.datetime.fromisoformat(manifest["bound_time"])
            written = dt.datetime.fromisoformat(manifest["written_at"])
            facts.lag_seconds[run] = (written - bound).total_seconds()
            for table, entry in manifest["tables"].items():
                facts.rows.setdefault(table, {})[run] = int(entry["rows"])
                facts.bytes_total += sum(int(f["bytes"]) for f in entry["files"])
            _activity(con, target, manifest, run, facts)
        _latest_state(con, target, manifests, facts)
    except duckdb.Error as exc:
        raise ExportError(f"cannot read the lake at {target.uri}: {exc}") from exc
    finally:
        con.close()
    return facts


def _activity(
    con: duckdb.DuckDBPyConnection,
    target: lake.Lake,
    manifest: dict[str, Any],
    run: int,
    facts: LakeFacts,
) -> None:
    """Inserts (created in the window) and updates of the audited user tables, and deletes."""
    for table in ACTIVITY_TABLES:
        paths = _paths(target, manifest, table)
        name = table.split(".")[1]
        if paths:
            row = con.execute(
                "select count(*) filter (where created_date = modified_date),"
                " count(*) filter (where created_date <> modified_date)"
                f" from read_parquet([{_quoted(paths)}])"
            ).fetchone()
            inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
        else:
            inserted = updated = 0
        facts.activity.setdefault(f"{name} inserted or new", {})[run] = inserted
        facts.activity.setdefault(f"{name} changed", {})[run] = updated
    paths = _paths(target, manifest, "etl.tombstones")
    deleted: dict[str, int] = defaultdict(int)
    if paths:
        for table, count in con.execute(
            f"select table_name, count(*) from read_parquet([{_quoted(paths)}]) group by 1"
        ).fetchall():
            deleted[str(table)] = int(count)
    for table in ACTIVITY_TABLES:
        facts.activity.setdefault(f"{table.split('.')[1]} deleted", {})[run] = deleted[table]


def _latest_state(
    con: duckdb.DuckDBPyConnection,
    target: lake.Lake,
    manifests: list[dict[str, Any]],
    facts: LakeFacts,
) -> None:
    """Wishlist statuses and rating scores as the lake has them now (latest version per key,
    minus tombstones)."""

    def latest(table: str, key: str) -> str | None:
        paths = [p for m in manifests for p in _paths(target, m, table)]
        if not paths:
            return None
        tombstones = [p for m in manifests for p in _paths(target, m, "etl.tombstones")]
        gone = (
            f"and {key} not in (select key_value from read_parquet([{_quoted(tombstones)}])"
            f" where table_name = '{table}')"
            if tombstones
            else ""
        )
        return (
            f"(select * from read_parquet([{_quoted(paths)}])"
            f" qualify row_number() over (partition by {key} order by modified_date desc) = 1)"
            f" where true {gone}"
        )

    wishlist = latest("app.wishlist", "wishlist_id")
    if wishlist:
        facts.statuses = [
            (str(s), int(n))
            for s, n in con.execute(
                f"select status, count(*) from {wishlist} group by 1 order by 2 desc"
            ).fetchall()
        ]
    ratings = latest("app.ratings", "rating_id")
    if ratings:
        facts.scores = [
            (int(s), int(n))
            for s, n in con.execute(
                f"select score, count(*) from {ratings} group by 1 order by 1"
            ).fetchall()
        ]


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


def _line(
    values: dict[int, float], runs: list[int], *, unit: str, width: int = 760, height: int = 220
) -> str:
    top = max([values.get(r, 0.0) for r in runs] + [0.001])
    left, bottom, plot_h = 56, 24, height - 44
    step = (width - left - 10) / max(len(runs) - 1, 1)
    points = [
        (left + i * step, height - bottom - plot_h * values.get(r, 0.0) / top)
        for i, r in enumerate(runs)
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
            f"<title>run {r}: {values.get(r, 0.0):.2f} {unit}</title></circle>"
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
        if table in (*ACTIVITY_TABLES, "etl.tombstones"):
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
        f"<h1>Lake report</h1><p>{html.escape(facts.target)} — {len(runs)} committed runs, "
        f"{total_rows:,} row versions, {facts.bytes_total / 1e6:,.1f} MB of Parquet. "
        f"Generated {generated}.</p>",
        "<h2>Rows per table per run</h2>",
        _bars(busy, runs),
        _table(["table", *(f"run {r}" for r in runs[-8:]), "all runs"], per_table_rows),
        "<h2>Watermark lag over runs</h2><p>Seconds between a run's bound (the moment of the "
        "source it copies) and the moment its manifest was written.</p>",
        _line(facts.lag_seconds, runs, unit=" s"),
        "<h2>Activity by kind, per run</h2><p>Row versions each run carried for the users' "
        "tables: new rows, changed rows, and deletes (tombstones).</p>",
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


def write_report(target: str, output: Path) -> Path:
    """Collect the lake's facts and write the page; returns its path."""
    page = render(collect(target))
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.with_name(f".{output.name}.tmp")
    staged.write_text(page, encoding="utf-8")
    staged.replace(output)
    return output
