"""`animedb export` (also `python -m exporter`): run, status, verify, tables, report and abandon,
for people (progress, tables) and for machines (--json)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import rich.progress
from rich import markup
from rich.console import Console
from rich.table import Column, Table

from animedb import cli as conventions
from animedb import db
from exporter import catalog, maintenance, protocol, snapshots
from exporter.durations import parse_duration
from exporter.errors import ExportError, one_line
from exporter.fileio import escape
from exporter.maintenance import MaintenanceSettings, maintain_target
from exporter.progress import MaintenanceResult, Progress, RunSummary, TableResult
from exporter.report import write_report
from exporter.run import DEFAULT_SETTLE, run_export
from exporter.status import status as read_status
from exporter.storage import open_storage, storage_errors
from exporter.verify import TableCheck
from exporter.verify import verify as run_verify

LOG_WIDTH = 200  # a log or a pipe has no width: wide enough that no table is cut
MAX_SETTLE_SECONDS = 3600.0  # a bound an hour behind now() already exports nothing recent


def console(*, stderr: bool = False) -> Console:
    """A terminal's own width; a pipe or a log gets LOG_WIDTH, so tables stay whole there."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else LOG_WIDTH)


err = console(stderr=True)
out = console()


class _Bars(Progress):
    """A bar per table while it exports: rows copied (from PostgreSQL's COPY progress)."""

    wants_rows = True

    def __init__(self, progress: rich.progress.Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, rich.progress.TaskID] = {}

    def table_started(self, table: str, estimated_rows: int | None) -> None:
        self.tasks[table] = self.progress.add_task(table, total=estimated_rows)

    def rows_copied(self, table: str, rows: int) -> None:
        if table in self.tasks:
            self.progress.update(self.tasks[table], completed=rows)

    def table_done(self, result: TableResult) -> None:
        task = self.tasks.get(result.table)
        if task is not None:
            self.progress.update(task, total=result.rows, completed=result.rows)

    def message(self, text: str) -> None:
        self.progress.console.print(_text(text), highlight=False)


def _fail(exc: Exception) -> click.ClickException:
    """The one line a failed command prints; what it quotes from the lake stays on it, and
    no escape code reaches the terminal."""
    return click.ClickException(escape(str(exc)))


def _text(value: object) -> str:
    """Text from the lake in a table cell or a line: escaped, and not read as rich markup."""
    return markup.escape(escape(str(value)))


@click.group(cls=conventions.Group)
@conventions.version_option()
def main() -> None:
    """Export PostgreSQL to a lake of Iceberg tables, exactly once.

    Each run copies the rows that are new or changed since the last, and the deletes.
    `python -m exporter` is the same command.

    Example: animedb export run --target ./lake
    """


# --target of the commands that need a lake (status alone can find the last one by itself).
target_option = click.option(
    "--target", required=True, help="The lake: a folder, or s3://bucket/prefix."
)


def lake_options(command: Any) -> Any:
    """--catalog and --namespace: which Iceberg catalog and namespace hold the lake's tables."""
    command = click.option(
        "--namespace",
        default=None,
        help=f"Namespace of the tables [env {catalog.NAMESPACE_VARIABLE}; default animedb].",
    )(command)
    return click.option(
        "--catalog",
        default=None,
        help=(
            f"pyiceberg catalog name [env {catalog.CATALOG_VARIABLE}; default animedb]: configured"
            " in .pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__*; when it is not, a folder gets"
            " a SQLite catalog inside it and s3:// the Glue Data Catalog."
        ),
    )(command)


@main.command()
@target_option
@lake_options
@click.option(
    "--settle",
    type=click.FloatRange(0, MAX_SETTLE_SECONDS),
    default=DEFAULT_SETTLE.total_seconds(),
    show_default=True,
    help="Seconds the bound stays behind now(), for transactions just starting.",
)
@conventions.quiet_option("No progress bars, no table: errors only.")
@conventions.json_option("Print the run summary as JSON.")
def run(
    target: str,
    catalog: str | None,
    namespace: str | None,
    settle: float,
    quiet: bool,
    as_json: bool,
) -> None:
    """Export what is new or changed into the lake.

    Every table of etl.exported_tables goes into its two Iceberg tables, the current state
    and the change log. A target's first run copies everything, later runs only what is new or
    changed since. A crashed run is resumed with its recorded windows and chunks.

    Example: animedb export run --target ./lake
    """
    if not math.isfinite(settle):  # nan passes every range check
        raise click.BadParameter(f"{settle} is not a number of seconds", param_hint="--settle")
    wait = dt.timedelta(seconds=settle)
    try:
        if quiet or as_json:
            summary = run_export(target, settle=wait, catalog=catalog, namespace=namespace)
        else:
            columns = (
                rich.progress.SpinnerColumn(),
                rich.progress.TextColumn("{task.description:<30}"),
                rich.progress.BarColumn(),
                rich.progress.MofNCompleteColumn(),
                rich.progress.TimeElapsedColumn(),
            )
            with rich.progress.Progress(*columns, console=err, transient=False) as bars:
                summary = run_export(
                    target,
                    settle=wait,
                    progress=_Bars(bars),
                    catalog=catalog,
                    namespace=namespace,
                )
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json(summary.to_json())
        return
    if not quiet:
        out.print(summary_table(summary))


def summary_table(summary: RunSummary, title: str | None = None) -> Table:
    """A run's final table: what each table shipped, and the totals."""
    resumed = " (resumed)" if summary.resumed else ""
    table = Table(
        _name_column(t.table for t in summary.tables),
        "window",
        "rows",
        "deletes",
        "files",
        "bytes",
        "seconds",
        title=title or f"run {summary.run_id}{resumed} → {summary.target} ({summary.namespace})",
    )
    for t in summary.tables:
        window = f"deferred: {t.deferred}" if t.deferred else f"{_short(t.lo)} → {_short(t.hi)}"
        table.add_row(
            t.table,
            window,
            f"{t.rows:,}",
            f"{t.deletes:,}",
            str(t.files),
            f"{t.bytes:,}",
            f"{t.seconds:.2f}",
        )
    table.add_row(
        "total",
        "",
        f"{summary.rows:,}",
        f"{sum(t.deletes for t in summary.tables):,}",
        str(sum(t.files for t in summary.tables)),
        f"{sum(t.bytes for t in summary.tables):,}",
        f"{summary.seconds:.2f}",
        style="bold",
    )
    return table


def _name_column(names: Iterable[str], header: str = "table") -> Column:
    """A first column that is never cut or wrapped: table names must stay whole in a log."""
    width = max([len(header), *(len(n) for n in names)])
    return Column(header, no_wrap=True, min_width=width)


def _short(value: str) -> str:
    if "T" in value:
        return value.split("T", 1)[1][:12] if not value.startswith("1970") else "start"
    return value


@main.command()
@click.option(
    "--target", default=None, help="The lake (default: the one the last run exported to)."
)
@lake_options
@conventions.json_option("Print the status as JSON.")
def status(target: str | None, catalog: str | None, namespace: str | None, as_json: bool) -> None:
    """Show the watermarks, the lag and what holds the next run back.

    For a target: each table's watermark, rows exported, last run, how far the lake trails
    PostgreSQL and what its Iceberg tables hold; and what holds the next run back (a pending
    run, a transaction left open).

    Example: animedb export status --target ./lake
    """
    try:
        result = read_status(target=target, catalog=catalog, namespace=namespace)
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json(result.to_json())
        return
    table = Table(
        _name_column(t.table for t in result.tables),
        "load",
        "watermark",
        "exported",
        "last run",
        "pending rows",
        "trails by",
    )
    for t in result.tables:
        table.add_row(
            t.table,
            t.load_type,
            t.watermark,
            f"{t.rows_exported:,}",
            str(t.last_run_id or "-"),
            f"{t.pending_rows:,}",
            t.trailing,
        )
    out.print(table)
    if result.pending_run:
        p = result.pending_run
        out.print(
            f"[yellow]run {p['run_id']} to {p['target']} is pending since {p['started_at']}: "
            "the next run resumes it[/yellow]"
        )
    if result.held_back_by:
        b = result.held_back_by
        out.print(
            f"[yellow]the bound is held back by pid {b['pid']} "
            f"({_text(b['application_name'] or 'no name')}, "
            f"{b['state']}), in a transaction open for {b['open_for']}[/yellow]"
        )


@main.command()
@target_option
@lake_options
@conventions.quiet_option("No table: the exit status alone says whether the lake matches.")
@conventions.json_option("Print the comparison as JSON.")
def verify(
    target: str, catalog: str | None, namespace: str | None, quiet: bool, as_json: bool
) -> None:
    """Compare the lake with PostgreSQL, row by row.

    For every table: its current-state Iceberg table, and the latest state rebuilt from its change
    log; check each file the tables reference (size, rows, SHA-256). Exit 1 on any difference.

    Example: animedb export verify --target ./lake
    """
    try:
        checks = run_verify(target, catalog=catalog, namespace=namespace)
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    ok = all(c.ok for c in checks)
    if as_json:
        conventions.echo_json({"ok": ok, "tables": [c.to_json() for c in checks]})
    elif not quiet:
        out.print(verify_table(checks, title=f"verify {target}"))
    if not ok:
        sys.exit(1)


@main.command()
@target_option
@lake_options
@click.option(
    "--run",
    "run_id",
    type=click.IntRange(min=1),
    default=None,
    help="The tables as of this run: each one's snapshot then (time travel).",
)
@conventions.json_option("Print the list as JSON.")
def tables(
    target: str, catalog: str | None, namespace: str | None, run_id: int | None, as_json: bool
) -> None:
    """List the lake's Iceberg tables and their metadata locations.

    For every exported source table, the identifiers and current metadata locations of its
    two Iceberg tables (current state, change log): what another engine needs to read them.
    With --run N, also each table's snapshot as of run N, for a time-travel read; a run older
    than the lake keeps is refused in one line.

    Example: animedb export tables --target ./lake --run 42 --json
    """
    try:
        listed = _listed(target, catalog, namespace, run_id)
    except ExportError as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json(listed)
        return
    headers = ["source", "current state", "change log", "metadata (current state)"]
    if run_id is not None:
        headers += [f"snapshot at run {run_id}", "change log snapshot"]
    table = Table(_name_column((_text(i["source"]) for i in listed), "source"), *headers[1:])
    for item in listed:
        row = [
            item["source"],
            item["current"]["identifier"],
            item["changes"]["identifier"],
            item["current"]["metadata_location"],
        ]
        if run_id is not None:
            row += [str(item["current"]["snapshot_id"]), str(item["changes"]["snapshot_id"])]
        table.add_row(*(_text(cell) for cell in row))
    out.print(table)


def _listed(
    target: str, catalog_name: str | None, namespace: str | None, run_id: int | None
) -> list[dict[str, Any]]:
    with storage_errors(target):
        lake = catalog.open_lake(open_storage(target), catalog_name, namespace)
        pairs = catalog.pairs(lake)
        as_of = {}
        if run_id is not None:
            as_of = snapshots.lake_as_of([t for p in pairs for t in p.tables], run_id)

        def entry(table: Any) -> dict[str, Any]:
            name = catalog.table_name(table)
            found: dict[str, Any] = {
                "identifier": name,
                "metadata_location": table.metadata_location,
            }
            if run_id is not None:
                snapshot = as_of.get(name)
                found["snapshot_id"] = snapshot.snapshot_id if snapshot is not None else None
            return found

        return [
            {"source": p.source, "current": entry(p.current), "changes": entry(p.changes)}
            for p in pairs
        ]


@main.command()
@target_option
@lake_options
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="The HTML file (default: <folder>-report.html beside a local lake).",
)
@conventions.quiet_option("Print nothing but errors.")
@conventions.json_option("Print where the report was written as JSON.")
def report(
    target: str,
    catalog: str | None,
    namespace: str | None,
    output: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write an HTML page about the lake, with charts.

    The charts: rows per table per run, watermark lag over runs, and activity by kind. It reads only
    the lake (Iceberg metadata and files).

    Example: animedb export report --target ./lake
    """
    if output is None:
        if target.startswith("s3://"):
            raise click.BadParameter("give --output for an s3:// lake", param_hint="--output")
        folder = Path(target).expanduser().resolve()
        output = folder.with_name(f"{folder.name}-report.html")
    try:
        written = write_report(target, output, catalog=catalog, namespace=namespace)
    except ExportError as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json({"report": str(written)})
    elif not quiet:
        click.echo(f"report written to {written}")


def verify_table(checks: list[TableCheck], title: str) -> Table:
    """verify's result: one row per table, and whether it matches."""
    table = Table(
        _name_column(c.table for c in checks),
        "compared",
        "in lake",
        "pending",
        "missing",
        "extra",
        "changed",
        "duplicates",
        "log differs",
        "files",
        "",
        title=title,
    )
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else "[red]DIFFERS[/red]"
        values = (
            c.compared,
            c.lake_rows,
            c.pending,
            c.missing,
            c.extra,
            c.changed,
            c.duplicates,
            c.log_differs,
            c.files,
        )
        table.add_row(c.table, *(f"{v:,}" for v in values), mark)
    return table


@main.command()
@click.argument("run_id", type=int)
@conventions.quiet_option("Print nothing but errors.")
@conventions.json_option("Print the run abandoned and the files removed as JSON.")
def abandon(run_id: int, quiet: bool, as_json: bool) -> None:
    """Give up a pending run (one whose target cannot be finished, say).

    The files it wrote are removed from the lake, and the target's next run exports its
    windows again. A run that some table has committed already is not abandoned: run the
    exporter to finish it.

    Example: animedb export abandon 42
    """
    try:
        with one_line("abandon"), protocol.connect(db.resolve()) as conn:
            protocol.acquire_lock(conn)
            run = protocol.pending_run(conn)
            if run is None or run.run_id != run_id:
                raise click.ClickException(f"run {run_id} is not pending: nothing to abandon")
            lake = catalog.open_key(run.target)
            with storage_errors(lake.uri):
                removed = maintenance.remove_run_files(lake, run)
            protocol.abandon_run(conn, run_id)
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json({"run_id": run_id, "files_removed": removed})
    elif not quiet:
        click.echo(
            f"run {run_id} abandoned ({removed} files removed); its windows go with the next run"
        )


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value, param.opts[0])
    except ExportError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], param=param) from exc


@main.command()
@target_option
@lake_options
@click.option(
    "--retention",
    callback=_duration,
    default=None,
    help=(
        f"How long snapshots and run tags stay readable, e.g. 7d or 12h "
        f"[env {maintenance.RETENTION_VARIABLE}; default 7d]."
    ),
)
@click.option(
    "--orphan-age",
    callback=_duration,
    default=None,
    help=(
        "How old a file no snapshot references must be to be deleted (younger ones may be"
        f" writes in flight) [env {maintenance.ORPHAN_AGE_VARIABLE}; default 3d]."
    ),
)
@click.option(
    "--target-file-mb",
    type=click.IntRange(1, 65536),
    default=None,
    help=f"Size compaction writes files to [env {maintenance.TARGET_FILE_VARIABLE}; default 128].",
)
@click.option("--dry-run", is_flag=True, help="Change nothing; list what would be deleted.")
@conventions.quiet_option("No table: errors only.")
@conventions.json_option("Print what maintenance did (or would do) as JSON.")
def maintain(
    target: str,
    catalog: str | None,
    namespace: str | None,
    retention: dt.timedelta | None,
    orphan_age: dt.timedelta | None,
    target_file_mb: int | None,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Compact, expire and sweep every table of the lake, now.

    Each run already does its share (the tables it changed, then others in turn, within
    ANIMEDB_LAKE_MAINTENANCE_SECONDS); this does all of it at once: change logs' small files
    compacted per day, current states rewritten without deleted rows, snapshots and run tags
    older than the retention expired, and files no snapshot or pending run needs, older than
    the orphan age, deleted. Safe beside runs and other engines' maintenance.

    Example: animedb export maintain --target ./lake --dry-run
    """
    try:
        config = MaintenanceSettings.from_environment()
        changes: dict[str, Any] = {}
        if retention is not None:
            changes["retention"] = retention
        if orphan_age is not None:
            changes["orphan_age"] = orphan_age
        if target_file_mb is not None:
            changes["target_file_bytes"] = target_file_mb * 1024 * 1024
        config = dataclasses.replace(config, **changes)
        with contextlib.ExitStack() as stack:
            progress = Progress()
            if not (quiet or as_json):
                columns = (
                    rich.progress.SpinnerColumn(),
                    rich.progress.TextColumn("{task.description}"),
                    rich.progress.TimeElapsedColumn(),
                )
                bar = stack.enter_context(
                    rich.progress.Progress(*columns, console=err, transient=True)
                )
                progress = _Steps(bar)
            result = maintain_target(
                target,
                catalog_name=catalog,
                namespace=namespace,
                config=config,
                dry_run=dry_run,
                progress=progress,
            )
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        conventions.echo_json({"dry_run": dry_run, **result.to_json()})
    elif not quiet:
        out.print(maintenance_table(result, dry_run=dry_run))
        for location in result.would_remove:
            out.print(_text(location), soft_wrap=True, highlight=False)
        for line in result.skipped:
            out.print(f"[yellow]{_text(line)}[/yellow]")


class _Steps(Progress):
    """Maintenance as it goes: a spinner naming the table and the step it is in, and its
    messages (a rewrite's, say), one line each, on stderr."""

    def __init__(self, bar: rich.progress.Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("maintenance", total=None)

    @contextlib.contextmanager
    def step(self, name: str, table: str | None = None) -> Iterator[None]:
        self.bar.update(self.task, description=f"{name.removeprefix('maintenance: ')} {table}")
        yield

    def message(self, text: str) -> None:
        self.bar.console.print(_text(text), soft_wrap=True, highlight=False)


def maintenance_table(result: MaintenanceResult, *, dry_run: bool = False) -> Table:
    """What maintenance did (or, in a dry run, would do), in one table."""
    verb = "would " if dry_run else ""
    table = Table("", "", title=f"maintenance ({'dry run' if dry_run else 'done'})")
    rows = (
        ("tables", f"{result.tables:,}"),
        (f"files {verb}rewritten", f"{result.rewritten_files:,} → {result.written_files:,}"),
        (f"snapshots {verb}expired", f"{result.expired_snapshots:,}"),
        (f"run tags {verb}expired", f"{result.expired_tags:,}"),
        (f"files {verb}deleted", f"{result.removed_files:,} ({result.removed_bytes:,} bytes)"),
        ("seconds", f"{result.seconds:.2f}"),
    )
    for name, value in rows:
        table.add_row(name, value)
    return table
