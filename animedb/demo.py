"""`make demo`: the whole data flow on embedded defaults, step by step, with a summary at the end.

crawl (replay of the recorded pages, when present) -> seeds -> dbt build -> export to ./lake ->
generator ticks -> incremental export -> verify -> rows per table.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from animedb import db
from animedb import dbt as dbt_runner
from exporter import ExportError, run_export
from exporter.cli import summary_table, verify_table
from exporter.verify import verify
from generators import GeneratorError, TickConfig
from generators import report as activity

REPO = Path(__file__).resolve().parent.parent
LAKE = REPO / "lake"
console = Console()

DEMO_TICKS = 5
# No seed: a second demo on the same database adds new activity instead of replaying the first.
DEMO_ACTIVITY = TickConfig(
    new_users=40,
    active_users=60,
    profile_edits=10,
    wishlist_adds=300,
    progressions=150,
    ratings=120,
    rerates=20,
    removals=10,
)


class DemoFailed(click.ClickException):
    pass


def step(title: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def wrap(func: Callable[..., object]) -> Callable[..., object]:
        def run(*args: object, **kwargs: object) -> object:
            console.rule(f"[bold]{title}")
            started = time.monotonic()
            result = func(*args, **kwargs)
            console.print(f"[dim]{title}: {time.monotonic() - started:.1f} s[/dim]")
            return result

        return run

    return wrap


def seed_rows(seeds: Path) -> dict[str, int]:
    counts = {}
    for path in sorted(seeds.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            counts[path.name] = max(sum(1 for _ in csv.reader(f)) - 1, 0)
    return counts


@step("1. Crawl: replay the recorded MyAnimeList pages into seeds/")
def crawl(shared_pages: Path, replay_urls: str) -> None:
    if not shared_pages.is_dir():
        console.print(
            f"[yellow]{shared_pages} not found: using the committed seeds/*.csv "
            "(the output of the same replay crawl)[/yellow]"
        )
        return
    scrapy = Path(sys.executable).parent / "scrapy"
    proc = subprocess.run(
        [
            str(scrapy),
            "crawl",
            "myanimelist",
            "-a",
            f"replay={shared_pages}",
            "-a",
            f"start_urls={replay_urls}",
            "-a",
            "out=seeds",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        raise DemoFailed("the replay crawl failed (see above)")
    table = Table("seed file", "rows", title="what the crawl wrote")
    for name, count in seed_rows(REPO / "seeds").items():
        table.add_row(name, f"{count:,}")
    console.print(table)


@step("2. Database: dbt build (seed, run, snapshot, test) into PostgreSQL")
def build_database(settings: db.Settings) -> None:
    console.print(f"database: {settings.describe()}")
    result = dbt_runner.run(["build", "--quiet"], settings)
    if result.returncode != 0:
        raise DemoFailed("dbt build failed (see above)")


@step("3. Export: copy the database into the lake (./lake)")
def export(settings: db.Settings, label: str) -> None:
    summary = run_export(str(LAKE), settings)
    console.print(summary_table(summary, title=f"{label}: run {summary.run_id} → {summary.target}"))


@step("4. Activity: generator ticks (users, wishlists, ratings) as animedb_generator")
def generate_activity(settings: db.Settings) -> None:
    summaries = activity.run_ticks(
        DEMO_ACTIVITY, DEMO_TICKS, settings, console=console, lines=False
    )
    console.print(
        activity.totals_table(activity.totals(summaries), title=f"{DEMO_TICKS} generator ticks")
    )


@step("6. Verify: rebuild every table from the lake and compare it with PostgreSQL")
def check_lake(settings: db.Settings) -> None:
    checks = verify(str(LAKE), settings)
    console.print(verify_table(checks, title=f"verify {LAKE}"))
    if not all(c.ok for c in checks):
        raise DemoFailed("the lake differs from PostgreSQL (see the table above)")


def table_counts(settings: db.Settings) -> list[tuple[str, int]]:
    with db.connection(settings, application_name="animedb-demo") as conn:
        names = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema in ('app', 'etl', 'snapshots') and table_type = 'BASE TABLE'"
            " order by table_schema, table_name"
        ).fetchall()
        counts = []
        for (name,) in names:
            schema, table = str(name).split(".")
            row = conn.execute(
                f'select count(*) from "{schema}"."{table}"'  # names from the catalog above
            ).fetchone()
            counts.append((str(name), int(row[0]) if row else 0))
        return counts


def summary(settings: db.Settings) -> None:
    console.rule("[bold]Summary")
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
@click.option("--replay-urls", default="", help="Comma-separated start URLs of the replay crawl.")
def main(shared_pages: Path, replay_urls: str) -> None:
    """Run the data flow end to end on embedded defaults (or the server PG* variables name).

    Example: python -m animedb.demo --shared-pages ../shared/fixtures/myanimelist
    """
    started = time.monotonic()
    try:
        settings = db.resolve()
        crawl(shared_pages, replay_urls)
        build_database(settings)
        export(settings, "export")
        generate_activity(settings)
        time.sleep(1.1)  # past the exporter's settle margin, so the ticks' rows are all exported
        export(settings, "5. incremental export")
        check_lake(settings)
        summary(settings)
    except (db.DatabaseUnavailable, ExportError, GeneratorError) as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[bold green]demo finished in {time.monotonic() - started:.0f} s[/bold green]")


if __name__ == "__main__":
    main()
