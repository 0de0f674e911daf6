"""`status`: where each table's watermark stands for a target, how far the lake trails
PostgreSQL, what the table's Iceberg snapshots hold, and what holds the next run back (a
pending run, an open transaction)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from animedb import db
from exporter import catalog, layout, protocol
from exporter.storage import open_storage, storage_errors
from exporter.tables import load_tables, targets


@dataclass
class TableStatus:
    table: str
    load_type: str
    watermark: str
    rows_exported: int
    last_run_id: int | None
    last_export_at: str | None
    pending_rows: int
    trailing: str
    lake_rows: int | None = None  # rows of the current-state table, from its snapshot summary
    lake_run: int | None = None  # the run its current snapshot came from


@dataclass
class Status:
    target: str | None = None
    tables: list[TableStatus] = field(default_factory=list)
    pending_run: dict[str, Any] | None = None
    held_back_by: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _lake_facts(lake: catalog.Lake | None) -> dict[str, tuple[int, int | None]]:
    """Source table -> (rows, run) of its current-state table's current snapshot."""
    if lake is None:
        return {}
    facts = {}
    for pair in catalog.pairs(lake):
        snapshot = pair.current.current_snapshot()
        if snapshot is None or snapshot.summary is None:
            continue
        summary = snapshot.summary.additional_properties
        rows = int(summary.get("total-records", 0)) - int(summary.get("total-position-deletes", 0))
        run = summary.get(layout.RUN_ID)
        facts[pair.source] = (rows, int(run) if run else None)
    return facts


def status(
    settings: db.Settings | None = None,
    *,
    target: str | None = None,
    catalog: str | None = None,
    namespace: str | None = None,
) -> Status:
    """A target's status; without one, that of the target the last run exported to. AWS
    failures (S3, Glue) raise ExportError with one line, as every other failure does."""
    settings = db.resolve() if settings is None else settings
    with storage_errors(target or "the lake"):
        return _status(settings, target, catalog, namespace)


def _status(
    settings: db.Settings, target: str | None, catalog_name: str | None, namespace: str | None
) -> Status:
    lake = None
    if target is not None:
        lake = catalog.open_lake(open_storage(target), catalog_name, namespace)
    conn = protocol.connect(settings, "status")
    with conn:
        known = targets(conn)
        if lake is not None:
            key = lake.key
        elif known:
            key = known[-1]
            lake = catalog.open_key(key)
        else:
            key = ""
        result = Status(target=key or None)
        facts = _lake_facts(lake)
        now_row = conn.execute("select now()").fetchone()
        assert now_row is not None
        now: dt.datetime = now_row[0]
        for t in load_tables(conn, key):
            lower: int | dt.datetime = t.max_id if t.load_type == "id" else t.max_modified
            if t.load_type == "id":
                watermark = f"id {t.max_id}"
            else:
                watermark = f"{t.max_modified.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
            beyond = protocol.cursor_range(t.cursor_column, t.load_type, lo=lower)
            query = sql.SQL("select count(*) from {} where ").format(t.identifier())
            row = conn.execute(query + sql.SQL(beyond)).fetchone()  # type: ignore[arg-type,unused-ignore]
            pending = int(row[0]) if row else 0
            if t.load_type == "modified":
                trailing = "never exported" if t.last_run_id is None else _age(now - t.max_modified)
            else:
                trailing = "never exported" if t.last_run_id is None else f"{pending} rows"
            result.tables.append(
                TableStatus(
                    table=t.name,
                    load_type=t.load_type,
                    watermark=watermark,
                    rows_exported=t.rows_exported,
                    last_run_id=t.last_run_id,
                    last_export_at=t.last_export_at.isoformat() if t.last_export_at else None,
                    pending_rows=pending,
                    trailing=trailing,
                    lake_rows=facts.get(t.name, (None, None))[0],
                    lake_run=facts.get(t.name, (None, None))[1],
                )
            )
        run = protocol.pending_run(conn)
        if run is not None:
            result.pending_run = {
                "run_id": run.run_id,
                "target": run.target,
                "started_at": run.started_at.isoformat(),
            }
        bounds = protocol.read_time_bound(conn, dt.timedelta(0))
        if bounds.blocker is not None:
            b = bounds.blocker
            result.held_back_by = {
                "pid": b.pid,
                "application_name": b.application_name,
                "state": b.state,
                "transaction_started": b.xact_start.isoformat(),
                "open_for": _age(now - b.xact_start),
            }
    return result
