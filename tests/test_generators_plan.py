"""The planner without a database: plans applied to an in-memory state keep the rules over many
ticks, the same seed plans the same rows, and the choices look like people's."""

from __future__ import annotations

import random
import statistics
from collections import Counter

from generators.config import TickConfig
from generators.plan import NewUser, plan_tick
from generators.state import Anime, Catalog, Entry, Genre, User


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
