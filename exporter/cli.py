"""`python -m exporter`: run, status, verify and abandon, for people (progress, tables) and for
machines (--json)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from animedb import db
from exporter import lake, protocol
from exporter.errors import ExportError
from exporter.report import write_report
from exporter.run import DEFAULT_SETTLE, RunSummary, TableResult, run_export
from exporter.run import Progress as RunProgress
from exporter.status import status as read_status
from exporter.verify import TableCheck
from exporter.verify import verify as run_verify

err = Console(stderr=True)
out = Console()


class _Bars(RunProgress):
    """A bar per table while it exports: rows copied (from PostgreSQL's COPY progress)."""

    wants_rows = True

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

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
        self.progress.console.print(text)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def main() -> None:
    """Copy new and changed rows of PostgreSQL into a Parquet lake, exactly once."""


@main.command()
@click.option("--target", required=True, help="A folder, or s3://bucket/prefix.")
@click.option(
    "--settle",
    type=float,
    default=DEFAULT_SETTLE.total_seconds(),
    show_default=True,
    help="Seconds the bound stays behind now(), for transactions just starting.",
)
@click.option("--quiet", is_flag=True, help="No progress bars, no table: errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def run(target: str, settle: float, quiet: bool, as_json: bool) -> None:
    """Export every table of etl.watermarks: the first run copies everything, later runs only
    what is new or changed since. A crashed run is resumed with its recorded windows.

    Example: python -m exporter run --target ./lake
    """
    if settle < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--settle")
    try:
        if quiet or as_json:
            summary = run_export(target, settle=dt.timedelta(seconds=settle))
        else:
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description:<30}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err, transient=False) as bars:
                summary = run_export(
                    target, settle=dt.timedelta(seconds=settle), progress=_Bars(bars)
                )
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    if not quiet:
        out.print(summary_table(summary))


def summary_table(summary: RunSummary, title: str | None = None) -> Table:
    """A run's final table: what each table shipped, and the totals."""
    resumed = " (resumed)" if summary.resumed else ""
    table = Table(
        "table",
        "window",
        "rows",
        "files",
        "bytes",
        "seconds",
        title=title or f"run {summary.run_id}{resumed} → {summary.target}",
    )
    for t in summary.tables:
        window = f"deferred: {t.deferred}" if t.deferred else f"{_short(t.lo)} → {_short(t.hi)}"
        table.add_row(
            t.table, window, f"{t.rows:,}", str(t.files), f"{t.bytes:,}", f"{t.seconds:.2f}"
        )
    table.add_row(
        "total",
        "",
        f"{summary.rows:,}",
        str(sum(t.files for t in summary.tables)),
        f"{sum(t.bytes for t in summary.tables):,}",
        f"{summary.seconds:.2f}",
        style="bold",
    )
    return table


def _short(value: str) -> str:
    if "T" in value:
        return value.split("T", 1)[1][:12] if not value.startswith("1970") else "start"
    return value


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Each table's watermark, rows exported, last run and how far the lake trails PostgreSQL;
    and what holds the next run back (a pending run, a transaction left open).

    Example: python -m exporter status
    """
    try:
        result = read_status()
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    table = Table("table", "load", "watermark", "exported", "last run", "pending rows", "trails by")
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
            f"({b['application_name'] or 'no name'}, "
            f"{b['state']}), in a transaction open for {b['open_for']}: {b['query']}[/yellow]"
        )


@main.command()
@click.option("--target", required=True, help="The lake: a folder, or s3://bucket/prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def verify(target: str, as_json: bool) -> None:
    """Rebuild every table from the lake (latest version per key, minus tombstones, committed
    manifests only) and compare it with PostgreSQL, row by row; exit 1 on any difference.

    Example: python -m exporter verify --target ./lake
    """
    try:
        checks = run_verify(target)
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "tables": [c.to_json() for c in checks]}, indent=2))
    else:
        out.print(verify_table(checks, title=f"verify {target}"))
    if not ok:
        sys.exit(1)


@main.command()
@click.option("--target", required=True, help="The lake: a folder, or s3://bucket/prefix.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="The HTML file (default: <folder>-report.html beside a local lake).",
)
def report(target: str, output: Path | None) -> None:
    """Write an HTML page about the lake, with charts: rows per table per run, watermark lag
    over runs, and activity by kind. It reads only the lake (manifests and their files).

    Example: python -m exporter report --target ./lake
    """
    if output is None:
        if target.startswith("s3://"):
            raise click.BadParameter("give --output for an s3:// lake", param_hint="--output")
        folder = Path(target).expanduser().resolve()
        output = folder.with_name(f"{folder.name}-report.html")
    try:
        written = write_report(target, output)
    except ExportError as exc:
        raise _fail(exc) from exc
    click.echo(f"report written to {written}")


def verify_table(checks: list[TableCheck], title: str) -> Table:
    """verify's result: one row per table, and whether it matches."""
    table = Table(
        "table",
        "compared",
        "in lake",
        "pending",
        "missing",
        "extra",
        "changed",
        "duplicates",
        "",
        title=title,
    )
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else "[red]DIFFERS[/red]"
        values = (c.compared, c.lake_rows, c.pending, c.missing, c.extra, c.changed, c.duplicates)
        table.add_row(c.table, *(f"{v:,}" for v in values), mark)
    return table


@main.command()
@click.argument("run_id", type=int)
def abandon(run_id: int) -> None:
    """Give up a pending run (one whose target cannot be finished, say); its manifest, if it got
    that far, is removed from the lake first, and the next run exports its windows again.

    Example: python -m exporter abandon 42
    """
    try:
        with protocol.connect(db.resolve()) as conn:
            protocol.acquire_lock(conn)
            run = protocol.pending_run(conn)
            if run is None or run.run_id != run_id:
                raise click.ClickException(f"run {run_id} is not pending: nothing to abandon")
            # readers trust manifests: a pending run's manifest must go before its windows reopen
            lake.open_lake(run.target).delete(lake.manifest_key(run_id))
            protocol.abandon_run(conn, run_id)
    except (ExportError, db.DatabaseUnavailable) as exc:
        raise _fail(exc) from exc
    click.echo(f"run {run_id} abandoned; its windows go with the next run")
