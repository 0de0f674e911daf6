"""What the generators show a person: a progress bar over ticks, one line per tick, and a final
table of rows by kind (used by the CLI and by `make demo`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from animedb import db
from generators.config import TickConfig
from generators.schedule import RunSummary
from generators.tick import PHASES, TickSummary, run_tick

KIND_LABELS = {
    "users_created": "users created",
    "users_edited": "profiles edited",
    "wishlist_added": "wishlist entries added",
    "wishlist_progressed": "wishlist entries moved on",
    "wishlist_removed": "wishlist entries removed",
    "ratings_added": "ratings added",
    "ratings_changed": "ratings changed",
    "ratings_removed": "ratings removed",
}


def run_ticks(
    config: TickConfig,
    count: int,
    settings: db.Settings | None = None,
    *,
    console: Console | None = None,
    quiet: bool = False,
    lines: bool = True,
) -> list[TickSummary]:
    """`count` ticks one after the other under a progress bar (none when quiet), with a summary
    line per tick (unless `lines` is false); a seeded config gives tick i the seed + i. Stops at
    the first failure (the exception propagates)."""
    console = Console() if console is None else console
    summaries: list[TickSummary] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    # A bar is for a person at a terminal; in a pipe or a log it would only add blank lines.
    disable = quiet or not console.is_terminal
    with Progress(*columns, console=console, transient=True, disable=disable) as progress:
        task = progress.add_task("ticks", total=count * len(PHASES))
        for index in range(count):

            def on_phase(name: str, index: int = index) -> None:
                progress.update(
                    task,
                    completed=index * len(PHASES) + PHASES.index(name),
                    description=f"tick {index + 1}/{count}: {name}",
                )

            summary = run_tick(config.for_tick(index), settings, on_phase=on_phase)
            progress.update(task, completed=(index + 1) * len(PHASES))
            summaries.append(summary)
            if lines:
                # through the console, which keeps the line above the live bar
                console.print(summary.line(), markup=False, highlight=False, soft_wrap=True)
    return summaries


def totals(summaries: Sequence[TickSummary]) -> RunSummary:
    run = RunSummary()
    for summary in summaries:
        run.add(summary)
    return run


def totals_table(run: RunSummary, title: str = "generated activity") -> Table:
    table = Table("kind", "rows", title=title)
    for kind, count in run.counts.items():
        table.add_row(KIND_LABELS.get(kind, kind), f"{count:,}")
    table.add_section()
    table.add_row("total", f"{run.rows:,}")
    return table
