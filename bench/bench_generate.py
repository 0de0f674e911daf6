"""`make bench-generate`: a ~100k-row generator tick beside a plain COPY of the same rows into the
same tables with their triggers (the generator's limit) and into the tables without them (what
the audit and business-rule triggers cost), on a throw-away PostgreSQL 15 with a synthetic
catalog. Each measurement starts from its own copy of the same database; medians of --repeat.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from animedb import db
from generators import TickConfig, run_tick
from tests import pg_harness
from tests.generator_helpers import add_synthetic_catalog, rule_breaches
from tests.pg_harness import Server

TABLES = ("users", "wishlist", "ratings")
# The columns a client sends (ids come from sequences, dates from the audit trigger), in the
# order the generator wrote the rows.
EXPORTS = {
    "users": "select username, email, display_name, country_code, birth_year, favorite_genre_id,"
    " bio from app.users order by user_id",
    "wishlist": "select user_id, anime_id, status, episodes_watched from app.wishlist"
    " order by wishlist_id",
    "ratings": "select user_id, anime_id, score from app.ratings order by rating_id",
}
COLUMNS = {
    "users": "username, email, display_name, country_code, birth_year, favorite_genre_id, bio",
    "wishlist": "user_id, anime_id, status, episodes_watched",
    "ratings": "user_id, anime_id, score",
}
RULE_TRIGGERS = {"wishlist": "wishlist_rules_on_insert", "ratings": "ratings_allowed_on_insert"}
AIM_GENERATOR = 0.6  # generator throughput / COPY-with-triggers throughput, at least
AIM_TRIGGERS = 2.5  # COPY-with-triggers time / COPY-without-triggers time, at most


@dataclass
class Measurement:
    label: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def tick_config(rows: int, seed: int) -> TickConfig:
    """An insert-only tick of about `rows` rows (what COPY can be compared with): 10% new users,
    65% wishlist entries, 25% ratings of the entries already watched."""
    users = rows // 10
    adds = rows * 65 // 100
    return TickConfig(
        new_users=users,
        active_users=0,
        profile_edits=0,
        wishlist_adds=adds,
        progressions=0,
        ratings=rows - users - adds,
        rerates=0,
        removals=0,
        seed=seed,
    )


def export_rows(pg: Server, dbname: str) -> dict[str, bytes]:
    data = {}
    with pg.connect(dbname) as conn, conn.cursor() as cur:
        for table, query in EXPORTS.items():
            with cur.copy(f"copy ({query}) to stdout") as copy:
                data[table] = b"".join(bytes(block) for block in copy)
    return data


def timed_copy(pg: Server, dbname: str, data: dict[str, bytes], schema: str = "app") -> float:
    with pg.connect(dbname) as conn:
        conn.execute("checkpoint")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for table in TABLES:
                with cur.copy(f"copy {schema}.{table} ({COLUMNS[table]}) from stdin") as copy:
                    copy.write(data[table])
        conn.commit()
        return time.perf_counter() - started


def audit_only(sql: Callable[[str], object]) -> None:
    """The app tables without the business rule's triggers."""
    for table, trigger in RULE_TRIGGERS.items():
        sql(f"alter table app.{table} disable trigger {trigger}")


def no_own_triggers(sql: Callable[[str], object]) -> None:
    """The app tables without any trigger of ours; their foreign keys still check every row.
    The dates the audit trigger would set come from column defaults instead."""
    for table in TABLES:
        sql(f"alter table app.{table} disable trigger user")
        sql(
            f"alter table app.{table} alter column created_date set default now(),"
            " alter column modified_date set default now()"
        )


def plain_copies(sql: Callable[[str], object]) -> None:
    """Copies of the tables (columns, defaults, checks, unique indexes) without any trigger:
    neither ours nor the foreign keys' (PostgreSQL implements those as triggers too)."""
    sql("create schema plain")
    for table in TABLES:
        sql(f"create table plain.{table} (like app.{table} including all)")
        sql(
            f"alter table plain.{table} alter column created_date set default now(),"
            " alter column modified_date set default now()"
        )


def prepare(pg: Server, template: str, name: str, change: Callable[..., None] | None) -> None:
    pg.create_database(name, template=template)
    if change is not None:
        with pg.connect(name) as conn:
            change(conn.execute)
            conn.commit()


def drop_database(pg: Server, name: str) -> None:
    with pg.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database "{name}" with (force)')


def build_template(pg: Server, anime: int, work: Path) -> str:
    project = pg_harness.make_dbt_project(work / "project")
    pg.create_database("bench_built")
    pg_harness.run_dbt(project, pg.env("bench_built"), "build")
    pg.create_database("bench_template", template="bench_built")
    with pg.connect("bench_template") as conn:
        add_synthetic_catalog(conn, anime)
        conn.commit()
    with pg.connect("bench_template", autocommit=True) as conn:
        conn.execute("vacuum analyze")
    return "bench_template"


def run(rows: int, anime: int, repeat: int, console: Console, quiet: bool) -> None:
    pg = pg_harness.start_debian_pg()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as work:
            with console.status("dbt build and a synthetic catalog", spinner="dots"):
                template = build_template(pg, anime, Path(work))
            gen = Measurement("generator tick (read, plan, write, commit)", [])
            phases: list[dict[str, float]] = []
            copies = {
                "all": Measurement("COPY into the app tables (all triggers)", []),
                "audit": Measurement("  the same, rule triggers disabled", []),
                "fk": Measurement("  the same, all our triggers disabled (FKs on)", []),
                "none": Measurement("COPY into copies of the tables, no triggers", []),
            }
            changes = {"all": None, "audit": audit_only, "fk": no_own_triggers,
                       "none": plain_copies}  # fmt: skip
            written = 0
            with Progress(console=console, transient=True, disable=quiet) as progress:
                task = progress.add_task("measuring", total=repeat * (1 + len(copies)))
                for r in range(repeat):
                    name = f"bench_gen_{r}"
                    pg.create_database(name, template=template)
                    with pg.connect(name, autocommit=True) as conn:
                        conn.execute("checkpoint")
                    summary = run_tick(tick_config(rows, seed=r), pg.settings(name))
                    gen.seconds.append(summary.seconds)
                    phases.append(summary.phase_seconds)
                    written = summary.rows
                    with pg.connect(name) as conn:
                        breaches = rule_breaches(conn)
                    if breaches:
                        raise click.ClickException(f"the benchmark tick broke rules: {breaches}")
                    data = export_rows(pg, name)
                    progress.advance(task)
                    for kind, measurement in copies.items():
                        copy_db = f"bench_copy_{kind}_{r}"
                        prepare(pg, template, copy_db, changes[kind])
                        schema = "plain" if kind == "none" else "app"
                        measurement.seconds.append(timed_copy(pg, copy_db, data, schema))
                        drop_database(pg, copy_db)
                        progress.advance(task)
                    drop_database(pg, name)
    finally:
        pg_harness.stop_debian_pg(pg)
    report(console, rows, written, gen, phases, copies)


def report(
    console: Console,
    asked: int,
    written: int,
    gen: Measurement,
    phases: list[dict[str, float]],
    copies: dict[str, Measurement],
) -> None:
    none = copies["none"].median
    table = Table(
        "measurement",
        "seconds",
        "rows/s",
        "time vs no triggers",
        title=f"{written:,} rows (users, wishlist, ratings) in one transaction, median of "
        f"{len(gen.seconds)}",
    )
    for m in (gen, *copies.values()):
        table.add_row(
            m.label, f"{m.median:.3f}", f"{written / m.median:,.0f}", f"{m.median / none:.2f}x"
        )
    console.print(table)
    names = list(phases[0])
    breakdown = ", ".join(
        f"{n} {statistics.median(p.get(n, 0.0) for p in phases):.3f}" for n in names
    )
    console.print(f"generator phases (median s): {breakdown}")
    speed = copies["all"].median / gen.median
    fk = copies["fk"].median
    # The aim is about our triggers: take the foreign keys' share (constraints, PostgreSQL's own
    # per-row checks, present with or without our triggers) out of the COPY with triggers.
    triggers = (none + copies["all"].median - fk) / none
    console.print(
        f"generator throughput / COPY with triggers = {speed:.2f} (aim >= {AIM_GENERATOR}): "
        f"{'met' if speed >= AIM_GENERATOR else 'MISSED'}"
    )
    console.print(
        f"audit + rule triggers = {triggers:.2f}x no triggers (aim <= {AIM_TRIGGERS}): "
        f"{'met' if triggers <= AIM_TRIGGERS else 'MISSED'} "
        f"(audit {(none + copies['audit'].median - fk) / none:.2f}x; with the foreign keys on "
        f"both sides: {copies['all'].median / fk:.2f}x)"
    )
    console.print(
        f"foreign keys = {fk / none:.2f}x no triggers; the app tables as they are = "
        f"{copies['all'].median / none:.2f}x copies of them without any trigger"
    )
    if written < asked * 0.95:
        console.print(f"[yellow]asked for {asked:,} rows, the tick wrote {written:,}[/yellow]")


@click.command()
@click.option("--rows", type=click.IntRange(1_000, 1_000_000), default=100_000, show_default=True,
              help="rows the tick writes (10% users, 65% wishlist, 25% ratings)")  # fmt: skip
@click.option("--anime", type=click.IntRange(100, 100_000), default=5_000, show_default=True,
              help="size of the synthetic catalog")  # fmt: skip
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="measurements of each kind; the table shows medians")  # fmt: skip
@click.option("--quiet", is_flag=True, help="no progress bar")
def main(rows: int, anime: int, repeat: int, quiet: bool) -> None:
    """Benchmark the generator's write path against plain COPY, with and without triggers, on a
    throw-away PostgreSQL 15 (Debian's binaries, as the tests use).

    Example: python -m bench.bench_generate --rows 100000 --repeat 3
    """
    try:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=110)  # a log keeps the table whole
        run(rows, anime, repeat, console, quiet)
    except (FileNotFoundError, db.DatabaseUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
