"""What a run and maintenance report while they work, and what they return: the one observer
that the CLI draws as bars, Lambda writes as log lines and the benchmarks time, and the run's
summary. The core never prints; it tells a Progress."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

# The steps a run and its maintenance announce with Progress.step, in the order they come. A
# step with a table is that table's share of it.
STEPS = (
    "setup",  # catalog, lock, the lake's identity, the exported tables
    "bounds",  # step 1: the run's windows, recorded as a pending run
    "schemas",  # the touched tables' lake tables, created or evolved
    "files: changes",  # step 2: a window's rows as Parquet files
    "files: deletes",  # a window's deletes as change-log rows
    "commit: changes",  # step 3: a change log's snapshot
    "commit: current",  # a current state's snapshot, with its position deletes
    "watermarks",  # step 4: the run committed in PostgreSQL
    "maintenance: expire",
    "maintenance: compact",
    "maintenance: sweep",
)


@dataclass
class TableResult:
    table: str
    load_type: str
    lo: str
    hi: str
    deferred: str | None = None
    rows: int = 0  # row versions the run brought
    deletes: int = 0  # deletes the run brought
    files: int = 0
    bytes: int = 0
    kept_chunks: int = 0  # chunks a resumed run found in place
    seconds: float = 0.0
    committed: bool = False  # whether the run committed snapshots to its lake tables


@dataclass
class MaintenanceResult:
    """What maintenance did to the lake's tables (or, in a dry run, would do)."""

    expired_snapshots: int = 0
    expired_tags: int = 0
    rewritten_files: int = 0  # small or deleted-from files compacted away
    written_files: int = 0  # the files they became
    removed_files: int = 0  # files no snapshot, pending run or recorded chunk needs
    removed_bytes: int = 0
    tables: int = 0  # tables looked at
    skipped: list[str] = field(default_factory=list)  # why a table's work waits for next time
    would_remove: list[str] = field(default_factory=list)  # dry run: the files, by location
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunSummary:
    run_id: int
    target: str
    catalog: str
    namespace: str
    resumed: bool
    bound_time: str
    seconds: float
    tables: list[TableResult] = field(default_factory=list)
    maintenance: MaintenanceResult | None = None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.rows
        return data


class Progress:
    """What a run reports while it works; the CLI draws it, Lambda and --quiet ignore it."""

    wants_rows = False  # whether to watch a running COPY's row count (costs a connection)

    def table_started(self, table: str, estimated_rows: int | None) -> None: ...

    def rows_copied(self, table: str, rows: int) -> None: ...

    def table_done(self, result: TableResult) -> None: ...

    def message(self, text: str) -> None: ...

    @contextlib.contextmanager
    def step(self, name: str, table: str | None = None) -> Iterator[None]:
        """The run is in step `name` (one of STEPS), for `table` when given, until the block
        ends. Steps nest: a table's file step inside the run's."""
        yield
