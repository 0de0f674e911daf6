"""Step 3 of a run: each touched table's snapshots, the change log's and then the current
state's, each exactly once (the run id is the marker), tagged run-<id> in the same commit.

The change log's snapshot appends the run's files, whatever else another writer committed
meanwhile. The current state's also adds position-delete files (one per data file) naming the
rows the run's versions and deletes replace; those are positions in the files live when it is
built, so after a concurrent commit (a compaction by Glue or Athena, say) it is built again on
the new state. A resynchronised table's current state is replaced: the run's files hold every
row, and every file live before is removed.
A table the run leaves unchanged gets no commit at all.
"""

from __future__ import annotations

import json
import time

import duckdb
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from exporter import deletefiles, duck, layout, live, protocol, snapshots
from exporter.catalog import Pair, table_name
from exporter.chunks import ChunkWriter, TableRun
from exporter.datafiles import Written, describe, export_day
from exporter.pauses import pause_if_asked
from exporter.progress import Progress
from exporter.snapshots import Change, Marker
from exporter.tables import ExportedTable

PRUNE_KEYS = 100_000  # up to this many keys, only the files whose key bounds admit one are read


class Committer:
    """The commits of one run, table by table (step 3)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        writer: ChunkWriter,
        run: protocol.PendingRun,
        progress: Progress,
        *,
        retention_ms: int,
        properties: dict[str, str],
        expire: bool = True,
    ) -> None:
        self.con, self.writer, self.run, self.progress = con, writer, run, progress
        self.storage = writer.storage
        self.retention_ms, self.properties = retention_ms, properties
        self.since_ms = int(run.started_at.timestamp() * 1000)
        self.marker = Marker.run(run.run_id)
        self.summary = {layout.BOUND_TIME: run.bound_time.isoformat()}
        # the history the run's commits expired on the way (None: expiry is left to others)
        self.expired = snapshots.Expiry() if expire else None

    def commit_tables(self, parts: list[TableRun]) -> None:
        """Every touched table's snapshots, table by table, each table done when both are in."""
        first = True
        for t in parts:
            if t.pair is not None:
                clock = time.monotonic()
                t.committed = self.commit(t.pair, t.table, t)
                t.seconds += time.monotonic() - clock
            self.progress.table_done(t.result)
            if t.pair is not None and first:
                first = False
                pause_if_asked("between_commits")

    def _commit(self, table: Table, build: snapshots.BuildChange, step: str, source: str) -> bool:
        with self.progress.step(step, source):
            done = snapshots.commit(
                table,
                build,
                marker=self.marker,
                since_ms=self.since_ms,
                tag=layout.tag(self.run.run_id),
                retention_ms=self.retention_ms,
                properties=self.properties,
                expired=self.expired,
            )
        return done is not None

    def commit(self, pair: Pair, table: ExportedTable, part: TableRun) -> bool:
        """The table's two snapshots; False when the run brings the table nothing to commit."""
        files = part.files
        summary = {**self.summary, layout.WINDOW: json.dumps(part.window.to_json())}
        partition = export_day(self.run.started_at)

        def changes(lake_table: Table) -> Change | None:
            if not files.changes and lake_table.current_snapshot() is not None:
                return None
            data = describe(
                self.con, self.storage, lake_table.schema(), files.changes, partition=partition
            )
            return Change(summary, data=data)

        def current(lake_table: Table) -> Change | None:
            if part.window.resync is not None:
                return self._replacement(lake_table, files.current, summary)
            if not files.current and not files.deletes and lake_table.current_snapshot():
                return None
            data = describe(self.con, self.storage, lake_table.schema(), files.current)
            written = self._position_deletes(lake_table, table, data)
            scoped = written.files if written else []
            protocol.record_files(self.writer.conn, self.run.target, [d.written for d in scoped])
            deletes = [d.describe() for d in scoped]
            if not data and not deletes and lake_table.current_snapshot() is not None:
                return None
            removed = written.replaced if written else []
            return Change(summary, data=data, deletes=deletes, removed=removed)

        committed = self._commit(pair.changes, changes, "commit: changes", table.name)
        committed |= self._commit(pair.current, current, "commit: current", table.name)
        return committed

    def _replacement(
        self, lake_table: Table, written: list[Written], summary: dict[str, str]
    ) -> Change | None:
        """A resynchronised table's current state: the run's files, which hold every row, in
        place of every file live now (built again on the new state after a concurrent
        commit)."""
        now = live.live_files(lake_table)
        data = describe(self.con, self.storage, lake_table.schema(), written)
        if not data and not now.all and lake_table.current_snapshot() is not None:
            return None
        return Change(summary, data=data, removed=now.all)

    def _position_deletes(
        self, lake_table: Table, table: ExportedTable, new_data: list[DataFile]
    ) -> deletefiles.Outcome | None:
        """Position-delete files: the rows of the current state, as it is now, that this
        run's versions and deletes replace (positions already deleted left out), in one file
        per data file it names (exporter/deletefiles.py). This run's own files need none: a
        delete inside its tombstone window committed before its bound, so before any of its
        reads; a key deleted and inserted again is read as its new life. A data file's earlier
        delete file is merged into its new one, which replaces it."""
        files = live.live_files(lake_table)
        if not files.data:
            return None
        key = f'"{table.key_column}"'
        touched = []
        if new_data:
            paths = live.paths_sql(self.storage, [f.file_path for f in new_data])
            touched.append(f"select {key} as k from read_parquet({paths})")
        tombstones = self.writer.tombstones
        if tombstones is not None and not tombstones.empty and self.writer.has_deletes(table):
            touched.append(
                "select key_value as k from pg.etl.tombstones where table_name ="
                f" {duck.quote(table.name)} and {tombstones.condition('tombstone_id')}"
            )
        if not touched:
            return None
        self.con.execute("create or replace temp table touched as " + " union ".join(touched))
        live_deletes = files.deletes
        files.data = self._holding(lake_table, table, files.data)
        if not files.data:
            return None
        rows_now = live.rows_sql(
            self.con,
            self.storage,
            lake_table.schema(),
            files,
            columns=[table.key_column],
            positions=True,
            table=table_name(lake_table),
            key_in=(table.key_column, "select k from touched"),
        )
        query = (
            f"select file_path, pos from ({rows_now}) r where r.{key} in (select k from touched)"
        )
        return deletefiles.write(
            self.con,
            self.storage,
            query,
            self.writer.staging.folder(f"{table.lake_name}_deletes"),
            lambda name: layout.run_location(lake_table.location(), self.run.run_id, name),
            live_deletes,
        )

    def _holding(
        self, lake_table: Table, table: ExportedTable, data: list[DataFile]
    ) -> list[DataFile]:
        """The live data files that may hold a touched key, by their key bounds (all of them
        when the run touches too many keys to be worth it)."""
        count = self.con.execute("select count(*) from touched").fetchone()
        if not count or count[0] > PRUNE_KEYS:
            return data
        keys = sorted(int(k) for (k,) in self.con.execute("select k from touched").fetchall())
        field_id = lake_table.schema().find_field(table.key_column).field_id
        return live.files_holding(data, field_id, keys)
