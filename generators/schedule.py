"""The local scheduler: an interval (`30s`, `5m`) or a 5-field cron expression (read in UTC, like
EventBridge's), and a loop that runs one tick per slot, never two at once, until told to stop.

croniter finds a cron expression's next slot. The five fields are still read here, into the
plain lists of values croniter is given, because croniter reads some of them otherwise than
cron does: an equal range (`5-5`, `mon-mon`) is the whole cycle to it, a reversed one
(`fri-mon`) wraps around where this tool refuses it, a `*` inside a list drops cron's rule that
either day field may match, and it takes fields and syntax cron has not (seconds, years, `L`,
`#`, `H`). Its errors also name neither the field nor the value ("[61 * * * *] is not
acceptable, out of range"); the ones here do."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from croniter import CroniterBadDateError, croniter

from animedb import db
from generators.config import ConfigError, GeneratorError, TickConfig
from generators.tick import TickSummary, run_tick
from generators.write import KINDS

UTC = dt.UTC
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)  # fmt: skip
_CRON_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
                "@annually": "0 0 1 1 *"}  # fmt: skip


class Schedule(Protocol):
    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first slot strictly after `moment` (aware, UTC)."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Every:
    seconds: float

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return moment + dt.timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


@dataclass(frozen=True)
class Cron:
    expression: str
    """As written (for messages)."""
    fields: str
    """The five fields as lists of the values they allow (day of week 0-6, 0 = Sunday): what
    croniter is given."""
    either_day: bool
    """cron's rule: when both day fields are restricted (neither starts with `*`), a day that
    matches either one matches; otherwise a day must match both."""

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        start = moment.astimezone(UTC)
        try:
            return croniter(self.fields, start, day_or=self.either_day).get_next(dt.datetime)
        except CroniterBadDateError:  # no slot within croniter's 50 years
            raise ConfigError(f"cron expression {self.expression!r} never fires") from None

    def describe(self) -> str:
        return f"cron {self.expression!r} (UTC)"


def parse_schedule(text: str) -> Schedule:
    """`30s`, `500ms`, `5m`, `1h` (a bare number is seconds), or a cron expression such as
    `*/5 * * * *` (minute hour day-of-month month day-of-week, with `*`, lists, ranges, steps,
    month and day names, and @hourly/@daily/@weekly/@monthly/@yearly)."""
    interval = _INTERVAL.match(text)
    if interval:
        seconds = float(interval.group(1)) * _UNIT_SECONDS[interval.group(2) or "s"]
        if seconds <= 0:
            raise ConfigError(f"--every must be a positive interval (got {text!r})")
        return Every(seconds)
    parts = _CRON_MACROS.get(text.strip().lower(), text).split()
    if len(parts) != 5:
        raise ConfigError(
            f"--every {text!r} is neither an interval (30s, 5m, 1h) nor a cron expression "
            "of 5 fields (minute hour day-of-month month day-of-week, e.g. '*/5 * * * *')"
        )
    values = [
        _cron_field(part, *spec, text=text) for part, spec in zip(parts, _CRON_FIELDS, strict=True)
    ]
    values[4] = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    cron = Cron(
        expression=text.strip(),
        fields=" ".join(",".join(map(str, sorted(allowed))) for allowed in values),
        either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
    )
    cron.next_after(dt.datetime.now(UTC))  # refuses an expression that never fires
    return cron


def _cron_field(
    part: str, name: str, low: int, high: int, names: tuple[str, ...], *, text: str
) -> frozenset[int]:
    """The values one field allows, read as cron reads them; a ConfigError names the field and
    what is wrong with it."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"cron expression {text!r}: {name} field {part!r} {why}")

    def number(token: str) -> int:
        token = token.lower()
        if token in names:
            return names.index(token) + (1 if name == "month" else 0)
        if not token.isdigit():
            raise bad(f"has {token!r}, not a number")
        value = int(token)
        if not low <= value <= high:
            raise bad(f"has {value}, outside {low}-{high}")
        return value

    found: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise bad(f"has step {step_text!r}, not a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise bad(f"has the range {base!r}, which runs backwards")
        else:
            start = number(base)
            end = high if step_text else start
        found.update(range(start, end + 1, step))
    return frozenset(found)


@dataclass
class RunSummary:
    """What a scheduler run did, for the final summary."""

    ticks: int = 0
    failed: int = 0
    retries: int = 0
    rows: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    interrupted: bool = False
    """A second signal rolled the tick in progress back instead of letting it finish."""

    def add(self, summary: TickSummary) -> None:
        self.ticks += 1
        self.retries += summary.retries
        self.rows += summary.rows
        self.seconds += summary.seconds
        for kind, count in summary.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + count

    def line(self) -> str:
        stopped = ", the last one interrupted and rolled back" if self.interrupted else ""
        return (
            f"{self.ticks} ticks committed, {self.failed} failed{stopped}: "
            f"{self.rows:,} rows, {self.retries} retries, {self.seconds:.2f} s in ticks"
        )


def run_every(
    schedule: Schedule,
    config: TickConfig,
    settings: db.Settings | None = None,
    *,
    stop: threading.Event | None = None,
    max_ticks: int | None = None,
    on_tick: Callable[[TickSummary], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
) -> RunSummary:
    """Run a tick in every slot of `schedule` (the first one at once for an interval) until
    `stop` is set or `max_ticks` ticks ran. Ticks run one after the other in this thread: a tick
    that overruns its slot makes the missed slots be skipped, never run twice at once. A failed
    tick is reported to `on_error` and the loop goes on (the database may come back); a
    KeyboardInterrupt rolls the tick in progress back and ends the run."""
    stop = threading.Event() if stop is None else stop
    summary = RunSummary()
    due = now() if isinstance(schedule, Every) else schedule.next_after(now())
    index = 0
    while not stop.is_set() and (max_ticks is None or index < max_ticks):
        wait = (due - now()).total_seconds()
        if wait > 0 and stop.wait(wait):
            break
        tick_config = config.for_tick(index)
        index += 1
        try:
            result = run_tick(tick_config, settings)
        except KeyboardInterrupt:
            summary.interrupted = True
            break
        except (GeneratorError, db.DatabaseUnavailable, psycopg.Error) as exc:
            summary.failed += 1
            if on_error is not None:
                on_error(exc)
        else:
            summary.add(result)
            if on_tick is not None:
                on_tick(result)
        current = now()
        while due <= current:
            due = schedule.next_after(due)
    return summary
