"""`status`: where each table's watermark stands, how far the lake trails PostgreSQL, and what
holds the next run back (a pending run, an open transaction)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from animedb import db
from exporter import protocol
from exporter.tables import load_tables


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


@dataclass
class Status:
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


def status(settings: db.Settings | None = None) -> Status:
    settings = db.resolve() if settings is None else settings
    conn = protocol.connect(settings, "status")
    result = Status()
    with conn:
        now_row = conn.execute("select now()").fetchone()
        assert now_row is not None
        now: dt.datetime = now_row[0]
        for t in load_tables(conn):
            if t.load_type == "id":
                beyond = sql.SQL("{} > {}").format(
                    sql.Identifier(t.key_column), sql.Literal(t.max_id)
                )
                watermark = f"id {t.max_id}"
            else:
                beyond = sql.SQL("{} >= {}").format(
                    sql.Identifier(t.cursor_column), sql.Literal(t.max_modified)
                )
                watermark = f"{t.max_modified.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
            row = conn.execute(
                sql.SQL("select count(*) from {} where {}").format(t.identifier(), beyond)
            ).fetchone()
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
                "query": b.query,
            }
    return result
