"""`python -m generators`: one tick of user activity, or ticks on a schedule, against the
project's database (animedb.db: PG* variables, else the embedded server)."""

from __future__ import annotations

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

from animedb import db
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


class UserError(click.ClickException):
    """One `Error: ...` line per problem on stderr, exit 1, no traceback."""

    def show(self, file: Any = None) -> None:
        for line in self.message.splitlines():
            click.echo(f"Error: {line}", err=True)


def tick_options(func: Callable[..., None]) -> Callable[..., None]:
    """The flags of TickConfig, shown in --help in this order: counts, taste, seed, retries."""
    func = click.option("--quiet", is_flag=True, help="no progress bar, no per-tick lines")(func)
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
    except GeneratorError as exc:
        raise UserError(_with_flags(str(exc))) from exc


def _with_flags(message: str) -> str:
    """Config errors name fields (for the Lambda event); on the command line, name the flags."""
    for flag, field, _ in _COUNT_FLAGS:
        message = message.replace(f"{field} must", f"{flag} must")
    return message.replace("taste must", "--taste must").replace(
        "max_retries must", "--max-retries must"
    )


@contextmanager
def user_errors() -> Iterator[None]:
    """Known failures become one line and exit 1; the tick was rolled back whole."""
    try:
        yield
    except (GeneratorError, db.DatabaseUnavailable) as exc:
        raise UserError(str(exc)) from exc
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the tick failed and was rolled back: {first}") from exc


@click.group()
def cli() -> None:
    """Generate user activity (users, wishlists, ratings) in the application tables, following
    the business rules, as the generator role (animedb_generator).

    The database is the project's: libpq's PG* variables when set, else the embedded server.
    """


@cli.command()
@tick_options
@click.option("--count", type=int, default=1, show_default=True, help="ticks to run, one by one")
def tick(quiet: bool, count: int, **options: Any) -> None:
    """Run one batch of activity in one transaction (or --count batches, one after another):
    new users, profile edits, wishlist adds, status changes, ratings, re-ratings and removals.

    Prints a line per tick (counts by kind: + added, ~ changed, - removed) and, for several
    ticks, a summary table.

    Example: python -m generators tick --adds 200 --ratings 80 --seed 7
    """
    config = make_config(options)
    if count < 1:
        raise UserError(f"--count must be at least 1 (got {count})")
    console = Console(soft_wrap=True, highlight=False)
    with user_errors():
        summaries = report.run_ticks(
            config, count, console=console, quiet=quiet, lines=not quiet or count == 1
        )
    if count > 1:
        run = report.totals(summaries)
        if not quiet:
            console.print(report.totals_table(run, title=f"{count} ticks"))
        click.echo(run.line())


@cli.command()
@click.option(
    "--every", "every", required=True, metavar="INTERVAL|CRON",
    help="30s, 5m, 1h, or a cron expression in UTC such as '*/5 * * * *'",
)  # fmt: skip
@tick_options
@click.option("--max-ticks", type=int, default=None, help="stop after this many ticks")
def run(every: str, quiet: bool, max_ticks: int | None, **options: Any) -> None:
    """Run a tick in every slot of a schedule until SIGINT or SIGTERM; the tick in progress then
    finishes (a second signal rolls it back instead) and the run ends with a summary, exit 0.
    Ticks of one process never overlap; a slot missed by a long tick is skipped. A failing tick
    is reported and the next slot runs anyway.

    Example: python -m generators run --every 30s --new-users 2 --adds 20
    """
    config = make_config(options)
    try:
        schedule: Schedule = parse_schedule(every)
    except GeneratorError as exc:
        raise UserError(str(exc)) from exc
    if max_ticks is not None and max_ticks < 1:
        raise UserError(f"--max-ticks must be at least 1 (got {max_ticks})")
    with user_errors():
        settings = db.resolve()
        ready = check_ready(settings)
    if not quiet:
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
        click.echo(f"Error: tick failed and was rolled back: {_first_line(exc)}", err=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_every(
            schedule,
            config,
            settings,
            stop=stop,
            max_ticks=max_ticks,
            on_tick=None if quiet else lambda s: click.echo(s.line()),
            on_error=on_error,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f"stopped by {received[0]}" if received else "done"
    if not quiet:
        Console(soft_wrap=True, highlight=False).print(report.totals_table(summary, title=why))
    click.echo(f"{why}: {summary.line()}")
    if summary.ticks == 0 and summary.failed > 0:
        sys.exit(1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error is one line on stderr and a non-zero exit."""
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as exc:  # unknown flag, bad flag value, missing --every
        where = exc.ctx.command_path if exc.ctx is not None else PROG
        message = exc.format_message().rstrip(".")
        click.echo(f"Error: {message} (see `{where} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
