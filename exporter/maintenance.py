"""Lake maintenance, part of every run and on demand (`animedb export maintain`): what keeps a
lake that is exported to every few minutes for years as cheap to write and to read as a young
one. For each lake table:

1. compaction: a change log's small files, partition (day) by partition, rewritten into files
   of the target size; a current state's small files and files with many deleted rows
   rewritten from their live rows (in key order), and its position-delete files merged into
   one, without the positions of files no longer live;
2. expiry: run tags past their age, then snapshots older than the retention that no ref holds
   (Iceberg's own rules, exporter/snapshots.py);
3. the orphan sweep: files in the table's folder that no retained snapshot references, that no
   pending run wrote, and that are older than a safety age (a younger file may belong to a
   write still in flight, ours or another engine's), deleted.

Every rewrite is a commit validated against the table's state at commit (the files it replaces
must still be live; files other writers added stay), exactly once by its job id in the summary,
its files in a folder of their own that nothing cleans but the sweep. A run maintains the tables
it changed and, within a time budget, the others whose turn has come (etl.lake_maintenance);
`maintain` does all of them at once, and can list what it would do without doing it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg
from pyiceberg.manifest import DataFile, ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

from animedb import db
from exporter import deletefiles, duck, layout, live, protocol, snapshots, sqltext
from exporter.catalog import (
    Lake,
    Pair,
    claim,
    open_lake,
    pairs,
    pyiceberg_configuration,
    table_name,
)
from exporter.datafiles import Written, describe
from exporter.durations import parse_duration
from exporter.errors import ExportError, first_line, one_line
from exporter.pauses import pause_if_asked
from exporter.progress import MaintenanceResult, Progress
from exporter.schema import select_list
from exporter.snapshots import Change, Conflict, Marker
from exporter.storage import Staging, open_storage, sha256_of, storage_errors

MAINTENANCE_VARIABLE = "ANIMEDB_LAKE_MAINTENANCE"  # off: runs leave the lake to other tools
RETENTION_VARIABLE = "ANIMEDB_LAKE_RETENTION"
ORPHAN_AGE_VARIABLE = "ANIMEDB_LAKE_ORPHAN_AGE"
TARGET_FILE_VARIABLE = "ANIMEDB_LAKE_TARGET_FILE_MB"
BUDGET_VARIABLE = "ANIMEDB_LAKE_MAINTENANCE_SECONDS"
DEFAULT_RETENTION = dt.timedelta(days=7)
DEFAULT_ORPHAN_AGE = dt.timedelta(days=3)  # Iceberg's remove_orphan_files default
DEFAULT_TARGET_FILE_MB = 128
DEFAULT_BUDGET = dt.timedelta(seconds=60)
MIN_INPUT_FILES = 8  # small files (or delete files) a table gathers before a rewrite
# a file below this share of the target size and with fewer rows than SMALL_ROWS is small: a
# run's delta, a rewrite still growing; not a chunk of a first load (1M rows by default, tens of
# MB, less for a narrow table), which rewriting would only cost a sort of the whole table
SMALL_SHARE = 0.25
SMALL_ROWS = 250_000
DELETED_SHARE = 0.3  # a data file with this share of its rows deleted is rewritten
MAX_INPUT_BYTES = 1024**3  # what one rewrite reads at most (its time stays bounded); the rest waits


@dataclass(frozen=True)
class MaintenanceSettings:
    """How the lake is kept: for how long history stays readable, how old an unreferenced file
    must be to go, the size data files are compacted to, and a run's time for all of it."""

    retention: dt.timedelta = DEFAULT_RETENTION
    orphan_age: dt.timedelta = DEFAULT_ORPHAN_AGE
    target_file_bytes: int = DEFAULT_TARGET_FILE_MB * 1024 * 1024
    enabled: bool = True
    budget: dt.timedelta | None = DEFAULT_BUDGET  # None: no limit (`maintain`)

    @classmethod
    def from_environment(cls) -> MaintenanceSettings:
        env = os.environ
        switch = env.get(MAINTENANCE_VARIABLE, "on").strip().lower()
        if switch not in ("on", "off", "true", "false", "1", "0"):
            raise ExportError(f"{MAINTENANCE_VARIABLE}={switch!r}: use on or off")
        size_text = env.get(TARGET_FILE_VARIABLE, str(DEFAULT_TARGET_FILE_MB))
        try:
            size_mb = float(size_text)
        except ValueError:
            size_mb = 0
        if not 1 <= size_mb <= 65536:
            raise ExportError(
                f"{TARGET_FILE_VARIABLE}={size_text!r} is not a file size in MB from 1 to 65536"
            )

        def duration(variable: str, default: dt.timedelta) -> dt.timedelta:
            text = env.get(variable)
            return parse_duration(text, variable) if text else default

        return cls(
            retention=duration(RETENTION_VARIABLE, DEFAULT_RETENTION),
            orphan_age=duration(ORPHAN_AGE_VARIABLE, DEFAULT_ORPHAN_AGE),
            target_file_bytes=int(size_mb * 1024 * 1024),
            enabled=switch in ("on", "true", "1"),
            budget=duration(BUDGET_VARIABLE, DEFAULT_BUDGET),
        )

    @property
    def retention_ms(self) -> int:
        return int(self.retention.total_seconds() * 1000)

    @property
    def check_interval(self) -> dt.timedelta:
        """How often a table a run did not change is looked at (its history ages anyway)."""
        return min(dt.timedelta(hours=1), self.retention / 10)

    @property
    def sweep_interval(self) -> dt.timedelta:
        return min(dt.timedelta(days=1), self.retention)

    def properties(self) -> dict[str, str]:
        """The Iceberg properties every lake table carries (layout.history_properties)."""
        return layout.history_properties(self.retention_ms, self.target_file_bytes)


@dataclass
class _Context:
    lake: Lake
    conn: psycopg.Connection[psycopg.rows.TupleRow]
    con: duckdb.DuckDBPyConnection
    staging: Staging
    settings: MaintenanceSettings
    progress: Progress
    dry_run: bool = False
    deadline: float | None = None  # time.monotonic() past which no new work starts
    result: MaintenanceResult = field(default_factory=MaintenanceResult)
    _pending: set[int] | None = None

    def in_time(self) -> bool:
        return self.deadline is None or time.monotonic() < self.deadline

    def pending_runs(self) -> set[int]:
        """Runs not committed yet, to any target: their files are not in a snapshot yet."""
        if self._pending is None:
            rows = self.conn.execute(
                "select run_id from etl.export_runs where status = 'pending'"
            ).fetchall()
            self._pending = {int(r[0]) for r in rows}
        return self._pending


# --- which tables, and when ----------------------------------------------------------------


def after_run(
    lake: Lake,
    conn: psycopg.Connection[psycopg.rows.TupleRow],
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    changed: list[Pair],
    settings: MaintenanceSettings,
    progress: Progress,
) -> MaintenanceResult | None:
    """A run's share of maintenance, once it has committed: the tables it changed, then those
    whose turn has come, while the budget lasts. None when maintenance is off, or a `maintain`
    holds the lake."""
    if not settings.enabled or not protocol.try_lock(conn, protocol.MAINTENANCE_LOCK_KEY):
        return None
    started = time.monotonic()
    budget = settings.budget
    ctx = _Context(
        lake,
        conn,
        con,
        staging,
        settings,
        progress,
        deadline=started + budget.total_seconds() if budget is not None else None,
    )
    try:
        seen = set()
        for pair in changed:
            for table, key in ((pair.changes, None), (pair.current, _key_column(pair.current))):
                if not ctx.in_time():
                    break
                _maintain_table(ctx, table, key)
                seen.add(table.name()[-1])
        for name in _due(ctx, seen):
            if not ctx.in_time():
                break
            found = lake.load(name)
            if found is not None and found.properties.get(layout.ROLE) in ("current", "changes"):
                _maintain_table(ctx, found, _key_column(found))
    finally:
        protocol.unlock(conn, protocol.MAINTENANCE_LOCK_KEY)
    ctx.result.seconds = time.monotonic() - started
    return ctx.result


def maintain(
    lake: Lake,
    conn: psycopg.Connection[psycopg.rows.TupleRow],
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    tables: list[Pair],
    settings: MaintenanceSettings,
    progress: Progress,
    *,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Every table of the lake, now: compaction, expiry and the sweep, whatever their turn
    (the caller holds the maintenance lock). A dry run changes nothing and lists the files the
    sweep would delete."""
    started = time.monotonic()
    ctx = _Context(lake, conn, con, staging, settings, progress, dry_run=dry_run)
    for pair in tables:
        for table in pair.tables:
            _maintain_table(ctx, table, _key_column(table), force_sweep=True)
    ctx.result.seconds = time.monotonic() - started
    return ctx.result


def maintain_target(
    target: str,
    settings: db.Settings | None = None,
    *,
    catalog_name: str | None = None,
    namespace: str | None = None,
    config: MaintenanceSettings | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    duck_config: duck.DuckConfig | None = None,
) -> MaintenanceResult:
    """`animedb export maintain`: all of a lake's maintenance now, with no time budget, beside
    runs (which then leave maintenance to it). Raises ExportError with one line."""
    progress = progress or Progress()
    settings = db.resolve() if settings is None else settings
    config = dataclasses.replace(
        config or MaintenanceSettings.from_environment(), budget=None, enabled=True
    )
    storage = open_storage(target)
    pyiceberg_configuration()
    if not storage.is_s3 and not Path(storage.uri).is_dir():
        raise ExportError(f"{storage.uri} holds no lake: export to it first (nothing maintained)")
    with one_line("maintenance"), storage_errors(storage.uri), Staging() as staging:
        storage.refuse_old_layout("which maintenance does not know")
        lake = open_lake(storage, catalog_name, namespace)
        with protocol.connect(settings, "maintain") as conn:
            protocol.acquire_lock(conn, protocol.MAINTENANCE_LOCK_KEY, "lake maintenance")
            if not claim(lake, *protocol.source_identity(conn), create=False):
                return MaintenanceResult()
            found = pairs(lake)
            duck_config = duck_config or duck.DuckConfig.from_environment()
            if duck_config.temp_directory is None:
                duck_config = dataclasses.replace(
                    duck_config, temp_directory=str(staging.file("duckdb-spill"))
                )
            con = duck.connect(duck_config, s3=storage.s3_access())
            try:
                return maintain(lake, conn, con, staging, found, config, progress, dry_run=dry_run)
            except duckdb.Error as exc:
                raise ExportError(duck.explain(exc, storage.uri)) from exc
            finally:
                con.close()


def _key_column(table: Table) -> str | None:
    return table.properties.get(layout.KEY_COLUMN) if _is_current(table) else None


def _is_current(table: Table) -> bool:
    return table.properties.get(layout.ROLE) == "current"


def _due(ctx: _Context, seen: set[str]) -> list[str]:
    """The lake tables not looked at for a check interval, longest waiting first."""
    names = ctx.lake.table_names() - seen
    rows = ctx.conn.execute(
        "select lake_table, checked_at from etl.lake_maintenance where target = %s",
        (ctx.lake.key,),
    ).fetchall()
    checked = {str(name): at for name, at in rows}
    cutoff = dt.datetime.now(dt.UTC) - ctx.settings.check_interval
    due = [n for n in names if checked.get(n) is None or checked[n] < cutoff]
    return sorted(due, key=lambda n: (checked.get(n) is not None, checked.get(n) or cutoff, n))


def _record(ctx: _Context, table: Table, *, swept: bool) -> None:
    if ctx.dry_run:
        return
    ctx.conn.execute(
        "insert into etl.lake_maintenance as m (target, lake_table, checked_at, swept_at)"
        " values (%s, %s, now(), case when %s then now() end)"
        " on conflict (target, lake_table) do update set checked_at = now(),"
        " swept_at = case when %s then now() else m.swept_at end",
        (ctx.lake.key, table.name()[-1], swept, swept),
    )


def _maintain_table(
    ctx: _Context, table: Table, key_column: str | None, *, force_sweep: bool = False
) -> None:
    name = table_name(table)
    ctx.result.tables += 1
    try:
        with ctx.progress.step("maintenance: compact", name):
            if _is_current(table) and key_column:
                _compact_current(ctx, table, key_column)
            elif not _is_current(table):
                _compact_changes(ctx, table)
        with ctx.progress.step("maintenance: expire", name):
            _expire(ctx, table)
        swept = False
        if force_sweep or _sweep_due(ctx, table):
            with ctx.progress.step("maintenance: sweep", name):
                swept = _sweep(ctx, table)
        _record(ctx, table, swept=swept)
    except Conflict as exc:
        ctx.result.skipped.append(f"{name}: another writer changed it ({exc}); next time")


def _sweep_due(ctx: _Context, table: Table) -> bool:
    row = ctx.conn.execute(
        "select swept_at from etl.lake_maintenance where target = %s and lake_table = %s",
        (ctx.lake.key, table.name()[-1]),
    ).fetchone()
    return (
        row is None
        or row[0] is None
        or (row[0] < dt.datetime.now(dt.UTC) - ctx.settings.sweep_interval)
    )


# --- compaction ------------------------------------------------------------------------------


def _added_since_rewrite(ctx: _Context, table: Table) -> int:
    """The small data files added since the last rewrite, ours or another engine's, from the
    snapshots' summaries: a cheap, in-memory reason to read the manifests and plan one. A
    commit's files count as small when their average size is (a run's delta, a first load in
    tiny chunks), not when it added a first load's large chunks."""
    data = 0
    for snapshot in snapshots.ancestry(table.metadata):
        summary = snapshot.summary
        if summary is None:
            break
        props = summary.additional_properties
        if (
            summary.operation == Operation.REPLACE
            or layout.MAINTENANCE_ID in props
            or int(props.get("deleted-data-files", "0")) > 0
        ):
            break
        added = int(props.get("added-data-files", "0"))
        size = int(props.get("added-files-size", "0"))
        rows = int(props.get("added-records", "0"))
        if added and size / added < SMALL_SHARE * ctx.settings.target_file_bytes:
            data += added if rows / added < SMALL_ROWS else 0
    return data


def _small(ctx: _Context, f: DataFile) -> bool:
    return (
        f.file_size_in_bytes < SMALL_SHARE * ctx.settings.target_file_bytes
        and f.record_count < SMALL_ROWS
    )


def _bounded(files: list[DataFile]) -> list[DataFile]:
    """The first files (smallest first) whose sizes add up to at most MAX_INPUT_BYTES."""
    chosen: list[DataFile] = []
    total = 0
    for f in sorted(files, key=lambda f: (f.file_size_in_bytes, f.file_path)):
        if chosen and total + f.file_size_in_bytes > MAX_INPUT_BYTES:
            break
        chosen.append(f)
        total += f.file_size_in_bytes
    return chosen


def _compact_changes(ctx: _Context, table: Table) -> None:
    """Each partition's small files rewritten into files of the target size: a partition of
    an earlier day (no run adds to it any more) once it has two, the current day's once it has
    MIN_INPUT_FILES."""
    data = _added_since_rewrite(ctx, table)
    if data < MIN_INPUT_FILES:
        return
    files = live.live_files(table)
    by_partition: dict[tuple[object, ...], list[DataFile]] = defaultdict(list)
    for f in files.data:
        if _small(ctx, f):
            by_partition[tuple(f.partition[i] for i in range(len(f.partition)))].append(f)
    newest = max(by_partition, default=None)
    groups = [
        _bounded(group)
        for partition, group in sorted(by_partition.items())
        if len(group) >= (MIN_INPUT_FILES if partition == newest else 2)
    ]
    # the change log's delete files (none of ours; another engine's) are applied, and kept
    groups = [g for g in groups if len(g) >= 2]
    if groups:
        _rewrite(ctx, table, groups, deletes=files.deletes, key_column=None)


def _compact_current(ctx: _Context, table: Table, key_column: str) -> None:
    """The current state's small files, once there are MIN_INPUT_FILES of them, and its files
    with DELETED_SHARE of their rows deleted, rewritten from their live rows; its delete files
    merged into one per data file once a data file has several (or a delete file names several
    data files), and whenever files are rewritten."""
    data = _added_since_rewrite(ctx, table)
    files: live.LiveFiles | None = None
    if data < MIN_INPUT_FILES and not _much_deleted(table) and not _stacked(table):
        if ctx.deadline is not None or not _has_deletes(table):
            return
        # delete files naming several data files (an earlier version's, another engine's)
        # show only in the manifests: `maintain` (daily on AWS) reads them, a run does not
        files = live.live_files(table)
        if deletefiles.most_per_data_file(files.deletes) < 2:
            return
    files = files or live.live_files(table)
    deleted = _deleted_per_file(ctx, files)
    small = [f for f in files.data if _small(ctx, f)]
    heavy = [
        f
        for f in files.data
        if f.record_count and deleted.get(f.file_path, 0) / f.record_count >= DELETED_SHARE
    ]
    chosen = heavy + (small if len(small) >= MIN_INPUT_FILES else [])
    chosen = _bounded(list({f.file_path: f for f in chosen}.values()))
    # positions of files no longer live (another engine rewrote them): dead weight to read
    dangling = bool(set(deleted) - {f.file_path for f in files.data})
    stacked = deletefiles.most_per_data_file(files.deletes)
    if not chosen and stacked < 2 and not dangling:
        return
    _rewrite(ctx, table, [chosen] if chosen else [], deletes=files.deletes, key_column=key_column)


def _has_deletes(table: Table) -> bool:
    snapshot = table.current_snapshot()
    props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    return props.get("total-delete-files", "0") not in ("", "0")


def _stacked(table: Table) -> bool:
    """Whether the current snapshot's summary counts more delete files than data files: then
    some data file has several (another engine's, or an earlier version's files naming many
    data files), which a merge makes one each. A run's own keep one per data file."""
    snapshot = table.current_snapshot()
    props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    try:
        return int(props.get("total-delete-files", "0")) > int(props.get("total-data-files", "0"))
    except ValueError:
        return False


def _much_deleted(table: Table) -> bool:
    """Whether the current snapshot's summary says DELETED_SHARE of the rows readers scan are
    deleted (another engine's snapshot may carry no totals: then it says nothing)."""
    snapshot = table.current_snapshot()
    props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    try:
        records = int(props.get("total-records", "0"))
        deleted = int(props.get("total-position-deletes", "0"))
    except ValueError:
        return False
    return records > 0 and deleted / records >= DELETED_SHARE


def _deleted_per_file(ctx: _Context, files: live.LiveFiles) -> dict[str, int]:
    if not files.deletes:
        return {}
    paths = live.paths_sql(ctx.lake.storage, [f.file_path for f in files.deletes])
    rows = ctx.con.execute(
        f"select file_path, count(distinct pos) from read_parquet({paths}) group by 1"
    ).fetchall()
    return {str(path): int(count) for path, count in rows}


def _rewrite(
    ctx: _Context,
    table: Table,
    groups: list[list[DataFile]],
    *,
    deletes: list[DataFile],
    key_column: str | None,
) -> None:
    """Rewrite each group of data files (one partition each) from its live rows, and with a
    current state (`key_column` given) its delete files as one; then commit the replacement,
    validated against the table as it is then. Nothing is committed in a dry run."""
    removed = [f for g in groups for f in g] + (deletes if key_column else [])
    if ctx.dry_run:
        ctx.result.rewritten_files += len(removed)
        return
    job = layout.new_job()
    since_ms = snapshots.now_ms()
    base = table.metadata.current_snapshot_id  # the state the rewrite reads
    folder = ctx.staging.folder(f"rewrite-{job}")
    written: list[Written] = []
    new_data: list[DataFile] = []
    storage = ctx.lake.storage
    try:
        for i, group in enumerate(groups):
            files = _write_group(ctx, table, group, deletes, key_column, folder / str(i), job, i)
            written += files
            new_data += describe(
                ctx.con, storage, table.schema(), files, partition=group[0].partition
            )
        new_deletes: list[DataFile] = []
        if key_column and deletes:
            kept = _merged_deletes(ctx, table, deletes, removed, folder, job)
            written += [d.written for d in kept]
            new_deletes = [d.describe() for d in kept]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    protocol.record_files(ctx.conn, ctx.lake.key, written)

    def discard() -> None:
        for w in written:
            storage.delete(w.location)
        protocol.forget_files(ctx.conn, [w.location for w in written])

    def build(current: Table) -> Change:
        snapshots.no_deletes_since(current, base)
        return Change({}, data=new_data, deletes=new_deletes, removed=removed, discard=discard)

    pause_if_asked("after_rewrite_files")
    snapshots.commit(
        table,
        build,
        marker=Marker.job(job),
        since_ms=since_ms,
        retention_ms=ctx.settings.retention_ms,
        properties=ctx.settings.properties(),
    )
    ctx.result.rewritten_files += len(removed)
    ctx.result.written_files += len(written)
    ctx.progress.message(f"{table_name(table)}: {len(removed)} file(s) rewritten as {len(written)}")
    pause_if_asked("after_rewrite")


def _write_group(
    ctx: _Context,
    table: Table,
    group: list[DataFile],
    deletes: list[DataFile],
    key_column: str | None,
    staged: Path,
    job: str,
    index: int,
) -> list[Written]:
    """One group's live rows as Parquet files of about the target size, in key order for a
    current state (so that each file covers a narrow key range a run's deletes can prune to),
    put in the rewrite's own folder."""
    schema = table.schema()
    name = table_name(table)
    rows = live.rows_sql(
        ctx.con, ctx.lake.storage, schema, live.LiveFiles(group, deletes), table=name
    )
    select, ids = select_list(
        schema, {f.name: sqltext.identifier(f.name) for f in schema.fields}, table=name
    )
    # the key column is the table's property: checked against its fields, then quoted
    order = f" order by {sqltext.identifier(live.key_column(table))}" if key_column else ""
    duck.copy_to_parquet(
        ctx.con,
        f"select {select} from ({rows}) s{order}",
        staged,
        field_ids=ids,
        options=f"FILE_SIZE_BYTES {ctx.settings.target_file_bytes}",
    )
    written = []
    for path in sorted(staged.glob("*.parquet")):
        location = layout.maintenance_location(table.location(), job, f"{index}-{path.name}")
        size, digest = path.stat().st_size, sha256_of(path)
        rows_in = duck.parquet_rows(ctx.con, str(path))
        ctx.lake.storage.put_file(path, location)
        written.append(Written(location, size, digest, rows_in))
    return written


def _merged_deletes(
    ctx: _Context,
    table: Table,
    deletes: list[DataFile],
    removed: list[DataFile],
    folder: Path,
    job: str,
) -> list[deletefiles.DeleteFile]:
    """The positions of all delete files in one file per data file, less those of data files
    that are no longer live or are being rewritten."""
    files = live.live_files(table)
    gone = {f.file_path for f in removed}
    keep = [f.file_path for f in files.data if f.file_path not in gone]
    if not keep:
        return []
    live.name_files(ctx.con, ctx.lake.storage, "kept", keep)
    paths = live.paths_sql(ctx.lake.storage, [f.file_path for f in deletes])
    return deletefiles.write(
        ctx.con,
        ctx.lake.storage,
        f"select file_path, pos from read_parquet({paths})"
        " where file_path in (select path from file_names_kept)",
        folder / "deletes",
        lambda name: layout.maintenance_location(table.location(), job, name),
    ).files


# --- expiry ----------------------------------------------------------------------------------


def _expire(ctx: _Context, table: Table) -> None:
    """Expire the table's history once some of it is a check interval past the retention, so
    that expiries come in batches, not one commit a run."""
    settings = ctx.settings
    slack_ms = int(settings.check_interval.total_seconds() * 1000)
    if not snapshots.plan_expiry(table.metadata, settings.retention_ms + slack_ms):
        return
    if ctx.dry_run:
        plan = snapshots.plan_expiry(table.metadata, settings.retention_ms)
        ctx.result.expired_snapshots += len(plan.snapshots)
        ctx.result.expired_tags += len(plan.tags)
        return
    expiry = snapshots.expire(table, settings.retention_ms)
    ctx.result.expired_snapshots += len(expiry.snapshots)
    ctx.result.expired_tags += len(expiry.tags)
    pause_if_asked("after_expire")


# --- the orphan sweep ------------------------------------------------------------------------


def referenced(table: Table) -> set[str]:
    """Every file the table's metadata still needs: its metadata files (the current one and
    those in its log), each retained snapshot's manifest list, manifests and live files, and
    its statistics files."""
    metadata = table.metadata
    found = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    found.update(s.statistics_path for s in metadata.statistics)
    found.update(s.statistics_path for s in metadata.partition_statistics)
    manifests: dict[str, ManifestFile] = {}
    for snapshot in metadata.snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            manifests.setdefault(manifest.manifest_path, manifest)
    for path, manifest in manifests.items():
        found.add(path)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            found.add(entry.data_file.file_path)
    return found


def _sweep(ctx: _Context, table: Table) -> bool:
    """Delete the table's orphan files; False when the table's folder is not inside the
    target (another tool's table: not ours to sweep)."""
    storage = ctx.lake.storage
    folder = table.location().rstrip("/")
    if not (folder + "/").startswith(storage.uri.rstrip("/") + "/"):
        ctx.result.skipped.append(
            f"{table_name(table)}: its folder {folder} is outside the target, not swept"
        )
        return False
    # the listing first, then the table as it is now: a file written after the listing is not
    # in it, and one committed before the refresh is among the referenced
    listing = storage.listing(folder)
    try:
        table.refresh()
        needed = referenced(table)
    except Exception as exc:  # a manifest that cannot be read: then nothing is an orphan
        ctx.result.skipped.append(
            f"{table_name(table)}: not swept, its metadata cannot be read ({first_line(exc)})"
        )
        return False
    pending = ctx.pending_runs()
    cutoff = dt.datetime.now(dt.UTC) - ctx.settings.orphan_age
    gone: list[str] = []
    for stored in listing:
        location = stored.location
        if location in needed or stored.modified > cutoff:
            continue
        if layout.run_of_location(location) in pending:
            continue
        if ctx.dry_run:
            ctx.result.would_remove.append(location)
        else:
            storage.delete(location)
            gone.append(location)
            pause_if_asked("during_sweep")
        ctx.result.removed_files += 1
        ctx.result.removed_bytes += stored.size
    protocol.forget_files(ctx.conn, gone)
    return True


def remove_run_files(lake: Lake, run: protocol.PendingRun) -> int:
    """Delete what a pending run wrote in every table of the namespace; refused if any table
    has the run committed (its files are referenced then). The number of files removed."""
    found = pairs(lake)
    since_ms = int(run.started_at.timestamp() * 1000)
    for pair in found:
        for table in pair.tables:
            if snapshots.run_committed(table, run.run_id, since_ms) is not None:
                raise ExportError(
                    f"run {run.run_id} is committed to {table_name(table)} already: "
                    "run the exporter to finish it instead"
                )
    removed = 0
    for pair in found:
        for table in pair.tables:
            folder = layout.run_location(table.location(), run.run_id)
            for location in lake.storage.list_files(folder):
                lake.storage.delete(location)
                removed += 1
    return removed
