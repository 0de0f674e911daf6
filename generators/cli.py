"""`animedb generate` (also `python -m generators`): one tick of user activity, or ticks on a
schedule, against the project's database (animedb.db: PG* variables, else the embedded server)."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
import psycopg
from rich.console import Console

from animedb import cli as conventions
from animedb import db
from animedb.errors import first_line
from generators import report
from generators.config import GeneratorError, TickConfig
from generators.schedule import Schedule, parse_schedule, run_every
from generators.tick import check_ready

PROG = "python -m generators"
_DEFAULTS = TickConfig()
# (flag, TickConfig field, help)
_COUNT_FLAGS = (
    ("--new-users", "new_users", "users who sign up"),
    ("--active-users", "active_users", "existing users drawn to act in the tick"),
    ("--edits", "profile_edits", "active users who edit their profile"),
    ("--adds", "wishlist_adds", "anime added to wishlists (popularity x taste)"),
    ("--progress", "progressions", "wishlist entries that move on (watching, completed...)"),
    ("--ratings", "ratings", "new ratings of watching/completed entries"),
    ("--rerates", "rerates", "ratings whose score changes"),
    ("--removals", "removals", "wishlist entries removed, with their rating"),
)


def tick_options(func: Callable[..., None]) -> Callable[..., None]:
    """The flags of TickConfig, shown in --help in this order: counts, taste, seed, retries;
    then --quiet and --json. TickConfig checks the values (for the Lambda event too)."""
    func = conventions.json_option("print the summary as JSON (no per-tick lines)")(func)
    func = conventions.quiet_option("no progress bar, no per-tick lines")(func)
    func = click.option(
        "--max-retries", type=int, default=_DEFAULTS.max_retries, show_default=True,
        help="retries of a tick that lost a race (deadlock, key race), with backoff",
    )(func)  # fmt: skip
    func = click.option(
        "--seed", type=int, default=None,
        help="the same seed on the same database gives the same rows (tick i: SEED + i)",
    )(func)  # fmt: skip
    func = click.option(
        "--taste", type=float, default=_DEFAULTS.taste, show_default=True,
        help="share of anime picks from the user's favorite genre (0-1)",
    )(func)  # fmt: skip
    for flag, name, text in reversed(_COUNT_FLAGS):
        func = click.option(
            flag, name, type=int, default=getattr(_DEFAULTS, name), show_default=True, help=text
        )(func)
    return func


def make_config(options: dict[str, Any]) -> TickConfig:
    names = {field for _, field, _ in _COUNT_FLAGS} | {"taste", "seed", "max_retries"}
    try:
        return TickConfig(**{k: v for k, v in options.items() if k in names})
    except GeneratorError as exc:  # a flag's value: a usage error, as click's own checks
        raise click.UsageError(
            _one_line(_with_flags(str(exc))), click.get_current_context()
        ) from exc


def _with_flags(message: str) -> str:
    """Config errors name fields (for the Lambda event); on the command line, name the flags."""
    for flag, field, _ in _COUNT_FLAGS:
        message = message.replace(f"{field} must", f"{flag} must")
    return message.replace("taste must", "--taste must").replace(
        "max_retries must", "--max-retries must"
    )


def _one_line(message: str) -> str:
    """A message of one line per problem (TickConfig's, for the Lambda event) as one line."""
    return "; ".join(line for line in message.splitlines() if line.strip())


@contextmanager
def user_errors() -> Iterator[None]:
    """Known failures become one line and exit 1; the tick was rolled back whole."""
    try:
        yield
    except (GeneratorError, db.DatabaseUnavailable) as exc:
        raise click.ClickException(_one_line(str(exc))) from exc
    except psycopg.Error as exc:
        raise click.ClickException(
            f"the tick failed and was rolled back: {first_line(exc)}"
        ) from exc


@click.group(cls=conventions.Group)
@conventions.version_option()
def main() -> None:
    """Generate user activity: users, wishlists and ratings.

    It is written into the application tables, following the business rules, as the generator role
    (animedb_generator). The database is the project's: libpq's PG* variables when set, else the
    embedded server. `python -m generators` is the same command.

    Example: animedb generate tick --seed 42 --count 10
    """


@main.command()
@tick_options
@click.option(
    "--count", type=conventions.IntRange(min=1), default=1, show_default=True,
    help="ticks to run, one by one",
)  # fmt: skip
def tick(quiet: bool, as_json: bool, count: int, **options: Any) -> None:
    """Run one batch of activity in one transaction.

    --count runs several, one after another. A batch holds new users, profile edits, wishlist adds,
    status changes, ratings, re-ratings and removals.

    Prints a line per tick (counts by kind: + added, ~ changed, - removed) and, for several
    ticks, a summary table; --json prints every tick and the totals as JSON instead.

    Example: animedb generate tick --adds 200 --ratings 80 --seed 7
    """
    config = make_config(options)
    console = Console(soft_wrap=True, highlight=False)
    with user_errors():
        summaries = report.run_ticks(
            config,
            count,
            console=console,
            quiet=quiet or as_json,
            lines=not as_json and (not quiet or count == 1),
        )
    if as_json:
        totals = report.totals(summaries)
        conventions.echo_json({"ticks": [s.as_dict() for s in summaries], "total": _plain(totals)})
        return
    if count > 1:
        run = report.totals(summaries)
        if not quiet:
            console.print(report.totals_table(run, title=f"{count} ticks"))
        click.echo(run.line())


@main.command()
@click.option(
    "--every", "every", required=True, metavar="INTERVAL|CRON",
    help="30s, 5m, 1h, or a cron expression in UTC such as '*/5 * * * *'",
)  # fmt: skip
@tick_options
@click.option(
    "--max-ticks", type=conventions.IntRange(min=1), default=None,
    help="stop after this many ticks",
)  # fmt: skip
def run(every: str, quiet: bool, as_json: bool, max_ticks: int | None, **options: Any) -> None:
    """Run a tick in every slot of a schedule, until SIGINT or SIGTERM.

    The tick in progress then finishes (a second signal rolls it back instead) and the run ends with
    a summary, exit 0. Ticks of one process never overlap; a slot missed by a long tick is skipped.
    A failing tick is reported and the next slot runs anyway. --json prints the summary as JSON at
    the end (and no per-tick lines).

    Example: animedb generate run --every 30s --new-users 2 --adds 20
    """
    config = make_config(options)
    try:
        schedule: Schedule = parse_schedule(every)
    except GeneratorError as exc:
        raise click.UsageError(_one_line(str(exc)), click.get_current_context()) from exc
    with user_errors():
        settings = db.resolve()
        ready = check_ready(settings)
    if not (quiet or as_json):
        click.echo(
            f"generating on {settings.describe()} ({ready}), {schedule.describe()}; "
            "Ctrl-C stops after the tick in progress",
            err=True,
        )

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if stop.is_set():
            raise KeyboardInterrupt  # the second signal: roll the tick in progress back
        stop.set()

    def on_error(exc: Exception) -> None:
        click.echo(f"Error: tick failed and was rolled back: {first_line(exc)}", err=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_every(
            schedule,
            config,
            settings,
            stop=stop,
            max_ticks=max_ticks,
            on_tick=None if quiet or as_json else lambda s: click.echo(s.line()),
            on_error=on_error,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f"stopped by {received[0]}" if received else "done"
    if as_json:
        conventions.echo_json({"stopped_by": received[0] if received else None} | _plain(summary))
    else:
        if not quiet:
            Console(soft_wrap=True, highlight=False).print(report.totals_table(summary, title=why))
        click.echo(f"{why}: {summary.line()}")
    if summary.ticks == 0 and summary.failed > 0:
        sys.exit(1)


def _plain(summary: Any) -> dict[str, Any]:
    """A scheduler's or several ticks' summary (a dataclass) as plain data, for --json."""
    data: dict[str, Any] = dataclasses.asdict(summary)
    if isinstance(data.get("seconds"), float):
        data["seconds"] = round(data["seconds"], 3)
    return data
