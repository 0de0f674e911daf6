"""`animedb demo` (`make demo`): the whole data flow on embedded defaults, step by step, with a
summary at the end. It composes every tool, so it lives above them, never in `animedb/`.

crawl (replay of the recorded pages, when present) -> seeds -> dbt build -> export to ./lake ->
rounds of generator activity, each followed by an incremental export -> verify -> HTML report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.table import Table

from animedb import REPO, db, seeds
from animedb import dbt as dbt_runner
from animedb_cli.crawl import run_crawl
from exporter import ExportError, RunSummary, run_export
from exporter.cli import console as exporter_console
from exporter.cli import summary_table, verify_table
from exporter.report import write_report
from exporter.verify import verify
from generators import GeneratorError, TickConfig
from generators import report as activity
from scrapy_crawler.urls import recorded_start_urls

LAKE = REPO / "lake"
REPORT = REPO / "lake-report.html"
ROUNDS = 3
TICKS_PER_ROUND = 4
# No seed: a second demo on the same database adds new activity instead of replaying the first.
DEMO_ACTIVITY = TickConfig(
    new_users=40, active_users=60, profile_edits=10, wishlist_adds=300, progressions=150,
    ratings=120, rerates=20, removals=10,
)  # fmt: skip
console = exporter_console()


class DemoFailed(click.ClickException):
    pass


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    console.rule(f"[bold]{title}")
    started = time.monotonic()
    yield
    console.print(f"[dim]{time.monotonic() - started:.1f} s[/dim]")


def crawl(shared_pages: Path, replay_urls: str) -> None:
    if not shared_pages.is_dir():
        console.print(
            f"[yellow]{shared_pages} not found: using the committed seeds/*.csv "
            "(the output of the same replay crawl)[/yellow]"
        )
        return
    arguments = ["-a", f"replay={shared_pages}", "-a", f"start_urls={replay_urls}",
                 "-a", "out=seeds", "--loglevel", "WARNING"]  # fmt: skip
    if run_crawl(arguments, cwd=REPO) != 0:
        raise DemoFailed("the replay crawl failed (see above)")
    table = Table("seed file", "rows", title="what the crawl wrote")
    for path in sorted((REPO / "seeds").glob("*.csv")):
        table.add_row(path.name, f"{seeds.count_rows(path) or 0:,}")
    console.print(table)


def build_database(settings: db.Settings) -> None:
    console.print(f"database: {settings.describe()}")
    if dbt_runner.run(["build", "--quiet"], settings).returncode != 0:
        raise DemoFailed("dbt build failed (see above)")


def export(settings: db.Settings) -> RunSummary:
    return run_export(str(LAKE), settings)


def activity_rounds(settings: db.Settings) -> None:
    """Rounds of generator ticks, each followed by an incremental export of what they did."""
    rounds = Table("round", "ticks", "rows written", "export run", "rows exported", "files",
                   "seconds", title="activity and incremental exports")  # fmt: skip
    all_ticks = []
    for n in range(1, ROUNDS + 1):
        ticks = activity.run_ticks(
            DEMO_ACTIVITY, TICKS_PER_ROUND, settings, console=console, lines=False
        )
        all_ticks += ticks
        time.sleep(1.1)  # past the exporter's settle margin, so the round is exported whole
        run = export(settings)
        rounds.add_row(str(n), str(len(ticks)), f"{sum(t.rows for t in ticks):,}",
                       str(run.run_id), f"{run.rows:,}", str(sum(t.files for t in run.tables)),
                       f"{run.seconds:.2f}")  # fmt: skip
    console.print(activity.totals_table(activity.totals(all_ticks), title="generated activity"))
    console.print(rounds)


def check_lake(settings: db.Settings) -> None:
    checks = verify(str(LAKE), settings)
    console.print(verify_table(checks, title=f"verify {LAKE}"))
    if not all(c.ok for c in checks):
        raise DemoFailed("the lake differs from PostgreSQL (see the table above)")


def table_counts(settings: db.Settings) -> list[tuple[str, int]]:
    with db.connection(settings, application_name="animedb-demo") as conn:
        names = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('app', 'etl', 'snapshots') and table_type = 'BASE TABLE'"
            " order by table_schema, table_name"
        ).fetchall()
        counts = []
        for schema, table in names:
            # names come from the catalog just read, quoted as identifiers
            row = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            counts.append((f"{schema}.{table}", int(row[0]) if row else 0))
        return counts


def summary(settings: db.Settings) -> None:
    table = Table("table", "rows", title=f"rows per table — {settings.describe()}")
    for name, count in table_counts(settings):
        table.add_row(name, f"{count:,}")
    console.print(table)


@click.command()
@click.option(
    "--shared-pages",
    type=click.Path(path_type=Path),
    default=REPO.parent / "shared" / "fixtures" / "myanimelist",
    help="Folder of recorded MyAnimeList pages to replay.",
)
@click.option(
    "--replay-urls",
    default=None,
    help="Comma-separated start URLs of the replay crawl (default: the recorded pages' list, "
    "scrapy_crawler/replay_urls.txt).",
)
def demo(shared_pages: Path, replay_urls: str | None) -> None:
    """Run the whole data flow, step by step, with a summary.

    On embedded defaults (or the server PG* variables name): a replay crawl into seeds/, dbt
    build, an export to ./lake, rounds of generator activity each exported, verify, and
    lake-report.html. A second demo continues where the first stopped.

    Example: animedb demo --shared-pages ../shared/fixtures/myanimelist
    """
    started = time.monotonic()
    try:
        settings = db.resolve()
        with step("1. Crawl: replay the recorded MyAnimeList pages into seeds/"):
            urls = ",".join(recorded_start_urls()) if replay_urls is None else replay_urls
            crawl(shared_pages, urls)
        with step("2. Database: dbt build (seed, run, snapshot, test) into PostgreSQL"):
            build_database(settings)
        with step(f"3. Export: the database into the lake ({LAKE})"):
            first = export(settings)
            console.print(summary_table(first))
        with step("4. Activity: generator ticks as animedb_generator, each round exported"):
            activity_rounds(settings)
        with step("5. Verify: rebuild every table from the lake, compare with PostgreSQL"):
            check_lake(settings)
        with step("6. Summary and report"):
            summary(settings)
            write_report(str(LAKE), REPORT)
    except (db.DatabaseUnavailable, seeds.SeedError, ExportError, GeneratorError) as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[bold green]demo finished in {time.monotonic() - started:.0f} s[/bold green]")
    console.print(f"lake: {LAKE}")
    console.print(f"report: [bold]{REPORT}[/bold]")
