"""The generators without a database: configuration checks, schedules, the scheduler loop and
the planner's behaviour (rules, determinism, believable choices)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics
import threading
import time
from collections import Counter

import pytest

from generators import schedule
from generators.config import ConfigError, TickConfig
from generators.plan import NewUser, plan_tick
from generators.schedule import Cron, Every, parse_schedule, run_every
from generators.state import Anime, Catalog, Entry, Genre, User
from generators.tick import TickSummary
from generators.write import KINDS

# --- configuration ---------------------------------------------------------------------------


def test_defaults_are_valid_and_every_bad_value_gets_its_own_line() -> None:
    TickConfig()
    with pytest.raises(ConfigError) as err:
        TickConfig(wishlist_adds=-1, taste=2.0, seed=-5, ratings=True, max_retries=99)
    lines = str(err.value).splitlines()
    assert len(lines) == 5
    assert lines[0] == "wishlist_adds must be between 0 and 1,000,000 (got -1)"
    assert any(line.startswith("ratings must be a whole number") for line in lines)
    assert any(line.startswith("taste must be between 0 and 1") for line in lines)
    assert any(line.startswith("seed must be between 0") for line in lines)
    assert any(line.startswith("max_retries must be between 0 and 20") for line in lines)


def test_config_from_plain_data_refuses_unknown_keys() -> None:
    config = TickConfig.from_mapping({"wishlist_adds": 10, "seed": 3, "taste": 0})
    assert (config.wishlist_adds, config.seed, config.taste) == (10, 3, 0)
    with pytest.raises(ConfigError, match=r"unknown setting 'wishlist_add' \(known: "):
        TickConfig.from_mapping({"wishlist_add": 10})
    with pytest.raises(ConfigError, match="new_users must be a whole number"):
        TickConfig.from_mapping({"new_users": "5"})


# --- schedules -------------------------------------------------------------------------------


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


# --- planning --------------------------------------------------------------------------------


def make_catalog(size: int = 300, seed: int = 0) -> Catalog:
    rng = random.Random(seed)
    anime = []
    for rank in range(1, size + 1):
        episodes = rng.choice([1, 12, 24, 26, 64, None])
        anime.append(
            Anime(
                anime_id=rank,
                weight=3_000_000 / rank**0.85 + 1,
                score=None if rank % 37 == 0 else round(rng.uniform(5.0, 9.2), 2),
                episodes=episodes,
                aired=not (episodes is None and rank % 3 == 0),
                genres=frozenset(rng.sample(range(1, 11), rng.randint(1, 3))),
            )
        )
    genres = tuple(Genre(g, f"Genre {g}", 1.0 + g) for g in range(1, 11))
    return Catalog(tuple(anime), genres, mean_score=7.0)


def simulate(
    catalog: Catalog, ticks: int, seed: int, taste: float = 0.6
) -> tuple[list[User], dict[tuple[int, int], Entry]]:
    """Apply plans to an in-memory state, as the database would, checking the rules each time."""
    users: list[User] = []
    entries: dict[tuple[int, int], Entry] = {}
    anime = catalog.by_id()
    config = TickConfig(new_users=20, active_users=30, wishlist_adds=150, progressions=80,
                        ratings=60, rerates=10, removals=8, profile_edits=5,
                        taste=taste)  # fmt: skip
    for t in range(ticks):
        rng = random.Random(seed * 1000 + t)
        acting = rng.sample(users, min(len(users), config.active_users))
        acting.sort(key=lambda u: u.user_id)
        ids = {u.user_id for u in acting}
        mine = [e for key, e in sorted(entries.items()) if key[0] in ids]
        plan = plan_tick(rng, catalog, acting, mine, config)
        assert [u.username for u in plan.new_users] == sorted(u.username for u in plan.new_users)
        created: dict[str, int] = {}
        for u in plan.new_users:
            created[u.username] = len(users) + 1
            users.append(User(len(users) + 1, u.username, u.favorite_genre_id))

        def uid(ref: int | NewUser, created: dict[str, int] = created) -> int:
            return created[ref.username] if isinstance(ref, NewUser) else ref

        for r in plan.removals:
            del entries[(r.user_id, r.anime_id)]
        for a in plan.wishlist_adds:
            key = (uid(a.user), a.anime_id)
            assert key not in entries, "added twice"
            entries[key] = Entry(key[0], a.anime_id, a.status, a.episodes_watched, None)
        for p in plan.progress:
            old = entries[(p.user_id, p.anime_id)]
            if old.score is not None:
                assert p.status in ("watching", "completed"), "a rated entry left the rule"
            entries[(p.user_id, p.anime_id)] = Entry(
                p.user_id, p.anime_id, p.status, p.episodes_watched, old.score
            )
        for rating in plan.ratings:
            key = (uid(rating.user), rating.anime_id)
            assert entries[key].status in ("watching", "completed") and entries[key].score is None
            e = entries[key]
            entries[key] = Entry(e.user_id, e.anime_id, e.status, e.episodes_watched, rating.score)
        for rr in plan.rerates:
            e = entries[(rr.user_id, rr.anime_id)]
            assert e.score is not None and rr.score != e.score
            entries[(rr.user_id, rr.anime_id)] = Entry(
                e.user_id, e.anime_id, e.status, e.episodes_watched, rr.score
            )
        for e in entries.values():
            bound = anime[e.anime_id].episodes
            assert bound is None or e.episodes_watched <= bound
            assert e.status != "plan_to_watch" or e.episodes_watched == 0
            assert anime[e.anime_id].aired or e.status == "plan_to_watch"
            if e.status == "completed":
                assert e.episodes_watched == bound
    return users, entries


def test_plans_follow_the_rules_over_many_ticks() -> None:
    users, entries = simulate(make_catalog(), ticks=25, seed=1)
    statuses = Counter(e.status for e in entries.values())
    assert set(statuses) == {"plan_to_watch", "watching", "completed", "on_hold", "dropped"}
    assert sum(e.score is not None for e in entries.values()) > 300
    assert len(users) == 25 * 20


def test_same_seed_same_plan() -> None:
    catalog = make_catalog()
    assert simulate(catalog, 6, seed=7) == simulate(catalog, 6, seed=7)
    assert simulate(catalog, 6, seed=7) != simulate(catalog, 6, seed=8)


def favorite_share(catalog: Catalog, taste: float) -> float:
    anime = catalog.by_id()
    users, entries = simulate(catalog, ticks=10, seed=3, taste=taste)
    favorite = {u.user_id: u.favorite_genre_id for u in users}
    return sum(favorite[e.user_id] in anime[e.anime_id].genres for e in entries.values()) / len(
        entries
    )


def test_choices_are_believable() -> None:
    catalog = make_catalog()
    anime = catalog.by_id()
    _, entries = simulate(catalog, ticks=25, seed=3)
    # popularity: the 10% most popular anime hold several times their share of list entries
    top = {a.anime_id for a in catalog.anime[: len(catalog.anime) // 10]}
    assert sum(e.anime_id in top for e in entries.values()) > 0.3 * len(entries)
    # taste: the user's favorite genre shows far more often than popularity alone makes it
    assert favorite_share(catalog, 0.6) > favorite_share(catalog, 0.0) + 0.25
    # scores: 1-10, following the anime's public score plus the user's bias
    pairs = [(anime[e.anime_id].score, e.score) for e in entries.values()
             if e.score is not None and anime[e.anime_id].score is not None]  # fmt: skip
    public, given = zip(*pairs, strict=True)
    assert min(given) >= 1 and max(given) <= 10
    assert statistics.correlation(public, given) > 0.5
    assert abs(statistics.mean(given) - statistics.mean(public)) < 0.8
