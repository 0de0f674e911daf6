"""Schedules without a database: intervals, cron expressions (croniter behind cron's reading of
the fields, in UTC), one-line errors, and the scheduler loop with a stand-in tick."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
from zoneinfo import ZoneInfo

import pytest

from generators import schedule
from generators.config import ConfigError, TickConfig
from generators.schedule import Cron, Every, parse_schedule, run_every
from generators.tick import TickSummary
from generators.write import KINDS

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("500ms", 0.5), ("2", 2), (" 1.5s ", 1.5)],
)
def test_intervals(text: str, seconds: float) -> None:
    assert parse_schedule(text) == Every(seconds)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2024-03-01 12:03:10", "2024-03-01 12:05"),
        ("*/5 * * * *", "2024-03-01 12:05:00", "2024-03-01 12:10"),
        ("0 9 * * mon-fri", "2024-03-02 10:00", "2024-03-04 09:00"),  # Saturday -> Monday
        ("30 2 1 * *", "2024-01-31 23:59", "2024-02-01 02:30"),
        ("0 0 29 2 *", "2023-03-01 00:00", "2024-02-29 00:00"),
        ("0 0 13 * 5", "2024-09-01 00:00", "2024-09-06 00:00"),  # day 13 OR a Friday
        ("15,45 8-10/2 * jan,jul *", "2024-07-31 10:50", "2025-01-01 08:15"),
        ("0 12 * * 7", "2024-03-01 00:00", "2024-03-03 12:00"),  # 7 is Sunday too
        ("@daily", "2024-03-01 00:00", "2024-03-02 00:00"),
    ],
)
def test_cron_next_slot(expression: str, after: str, expected: str) -> None:
    cron = parse_schedule(expression)
    assert isinstance(cron, Cron)
    assert cron.next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "positive interval"),
        ("soon", "neither an interval"),
        ("* * *", "neither an interval"),
        ("61 * * * *", "minute field '61' has 61, outside 0-59"),
        ("*/0 * * * *", "not a positive number"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 * * 5-1", "runs backwards"),
        ("0 0 * foo *", "not a number"),
    ],
)
def test_bad_schedules_say_why(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_schedule(text)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # where croniter's own reading differs, cron's holds: an equal range is one value...
        ("5-5 * * * *", "2024-03-01 12:06", "2024-03-01 13:05"),
        ("0 9 * * mon-mon", "2024-03-01 00:00", "2024-03-04 09:00"),  # Friday -> Monday
        # ...a start with a step runs to the end of the field...
        ("10/20 * * * *", "2024-03-01 12:31", "2024-03-01 12:50"),
        ("59/15 * * * *", "2024-03-01 12:00", "2024-03-01 12:59"),
        # ...and a day field that starts with `*` makes a day match both fields, else either
        ("0 0 */2 * mon", "2024-03-01 00:00", "2024-03-11 00:00"),  # an odd day AND a Monday
        ("0 0 4,* * mon", "2024-03-01 00:00", "2024-03-02 00:00"),  # day 4, any day, OR Monday
        ("0 0 * * fri-7", "2024-03-04 00:00", "2024-03-08 00:00"),  # Friday to Sunday
        ("*/20 1-3 * * *", "2024-03-01 03:40", "2024-03-02 01:00"),
        ("0 0 1,15 feb,aug *", "2024-02-15 00:00", "2024-08-01 00:00"),
        ("@HOURLY", "2024-03-01 12:00", "2024-03-01 13:00"),
    ],
)
def test_cron_reads_ranges_steps_and_lists_as_cron_does(
    expression: str, after: str, expected: str
) -> None:
    assert parse_schedule(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize("day", ["2024-03-30", "2024-10-26"])
def test_cron_slots_are_utc_whatever_zone_the_moment_is_in(day: str) -> None:
    """The nights after these days Berlin's clocks change: 02:30 local does not exist on the
    first and happens twice on the second. In UTC every slot is a day after the last."""
    cron = parse_schedule("30 2 * * *")
    slots = [cron.next_after(dt.datetime.fromisoformat(f"{day} 12:00").replace(tzinfo=BERLIN))]
    for _ in range(3):
        slots.append(cron.next_after(slots[-1]))
    assert slots[0] == at(f"{day} 02:30") + dt.timedelta(days=1)
    assert all(slot.utcoffset() == dt.timedelta(0) for slot in slots)
    assert {later - earlier for earlier, later in itertools.pairwise(slots)} == {
        dt.timedelta(days=1)
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # what croniter alone would take, but cron's five fields do not have
        ("0 0 * * * 2030", "neither an interval"),  # a year
        ("*/10 * * * * *", "neither an interval"),  # seconds
        ("@reboot", "neither an interval"),
        ("0 0 L * *", "day of month field 'L' has 'l', not a number"),
        ("0 0 * * 5#2", "day of week field '5#2' has '5#2', not a number"),
        ("0 0 ? * mon", "day of month field '?' has '?', not a number"),
        ("H * * * *", "minute field 'H' has 'h', not a number"),
        ("0 0 * * fri-mon", "the range 'fri-mon', which runs backwards"),  # croniter wraps it
    ],
)
def test_what_only_croniter_reads_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_schedule(text)


def test_a_bad_expression_is_one_line_naming_it_and_what_is_wrong() -> None:
    with pytest.raises(ConfigError) as err:
        parse_schedule("61 * * * *")
    assert str(err.value) == "cron expression '61 * * * *': minute field '61' has 61, outside 0-59"
    with pytest.raises(ConfigError) as err:
        parse_schedule("0 0 31 4,6 *")
    assert str(err.value) == "cron expression '0 0 31 4,6 *' never fires"
    assert err.value.__cause__ is None and err.value.__suppress_context__  # croniter's stays in


def fake_summary(seed: int) -> TickSummary:
    return TickSummary(seed, dict.fromkeys(KINDS, 1), {}, 0, 0.01)


def test_scheduler_never_overlaps_ticks_and_skips_missed_slots(monkeypatch) -> None:
    spans: list[tuple[float, float]] = []
    seeds: list[int | None] = []

    def slow_tick(config: TickConfig, settings=None) -> TickSummary:
        start = time.monotonic()
        seeds.append(config.seed)
        time.sleep(0.12)  # longer than the 0.05 s slot
        spans.append((start, time.monotonic()))
        return fake_summary(config.seed or 0)

    monkeypatch.setattr(schedule, "run_tick", slow_tick)
    summary = run_every(Every(0.05), TickConfig(seed=40), max_ticks=4)
    assert summary.ticks == 4 and summary.rows == 4 * len(KINDS)
    assert seeds == [40, 41, 42, 43]  # tick i of a run seeded s has seed s + i
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= end  # one at a time
        assert next_start - end < 0.05  # the missed slots are skipped, not queued


def test_scheduler_stops_after_the_tick_in_progress(monkeypatch) -> None:
    stop = threading.Event()
    ran: list[int] = []

    def tick(config: TickConfig, settings=None) -> TickSummary:
        ran.append(1)
        if len(ran) == 2:
            stop.set()  # as a signal handler would, in the middle of the second tick
        return fake_summary(0)

    monkeypatch.setattr(schedule, "run_tick", tick)
    summary = run_every(Every(0.01), TickConfig(), stop=stop)
    assert summary.ticks == 2 and not summary.interrupted


def test_scheduler_reports_failures_and_goes_on_and_rolls_back_on_interrupt(monkeypatch) -> None:
    calls: list[int] = []
    errors: list[Exception] = []

    def tick(config: TickConfig, settings=None) -> TickSummary:
        calls.append(1)
        if len(calls) == 1:
            raise ConfigError("the database is busy")
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_summary(0)

    monkeypatch.setattr(schedule, "run_tick", tick)
    summary = run_every(Every(0.01), TickConfig(), on_error=errors.append)
    assert (summary.ticks, summary.failed, summary.interrupted) == (1, 1, True)
    assert [str(e) for e in errors] == ["the database is busy"]
    assert "interrupted and rolled back" in summary.line()
