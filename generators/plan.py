"""Planning one tick in Python from what was read: a pure function of the state and a seeded
random.Random, so the same seed on the same database plans the same rows.

The plan follows the business rule (rate only what you watch or have completed, episodes within
the anime's count) so that a tick never fails on it; the database still enforces it regardless.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Generic, NamedTuple, TypeVar

from generators import people
from generators.config import TickConfig
from generators.state import RATEABLE, Anime, Catalog, Entry, User

T = TypeVar("T")


class Weighted(Generic[T]):
    """Draws with probability proportional to weight, by bisection of cumulative weights (a
    tick draws hundreds of thousands of times: this is random.choices without its overhead)."""

    def __init__(self, items: Iterable[tuple[T, float]]) -> None:
        self.items: list[T] = []
        self.cumulative: list[float] = []
        total = 0.0
        for item, weight in items:
            total += weight
            self.items.append(item)
            self.cumulative.append(total)
        self.total = total

    def __bool__(self) -> bool:
        return bool(self.items)

    def draw(self, rng: random.Random) -> T:
        point = rng.random() * self.total
        return self.items[bisect.bisect_right(self.cumulative, point, 0, len(self.items) - 1)]


# How new list entries start, as on MyAnimeList: mostly planned, some imported as seen.
NEW_ENTRY_STATUS = Weighted([("plan_to_watch", 0.55), ("watching", 0.27), ("completed", 0.18)])
# Where a watched entry goes next (the rated ones only continue or complete: the rule).
WATCHING_NEXT = Weighted(
    [("watched", 0.55), ("completed", 0.30), ("paused", 0.08), ("dropped", 0.07)]
)
ON_HOLD_NEXT = Weighted([("resumed", 0.7), ("dropped", 0.3)])
# Which entries users clean out of their lists.
REMOVAL_WEIGHT = {"dropped": 4.0, "plan_to_watch": 2.0, "on_hold": 2.0, "watching": 1.0,
                  "completed": 0.5}  # fmt: skip
RATING_WEIGHT = {"completed": 3.0, "watching": 1.0}
USER_BIAS = NormalDist(0.0, 0.8)  # some users score everything high, others low
FAVORITE_GENRE_BONUS = 0.5
SCORE_NOISE = 1.0
TRIES_PER_ADD = 20  # a user whose list holds most of what they like stops adding


class NewUser(NamedTuple):
    username: str
    email: str
    display_name: str
    country_code: str | None
    birth_year: int | None
    favorite_genre_id: int | None
    bio: str | None


# An existing user's id, or a user this tick creates (their id is known once inserted).
UserRef = int | NewUser


class ProfileEdit(NamedTuple):
    """The fields a user changes; None leaves a field as it is."""

    user_id: int
    display_name: str | None = None
    country_code: str | None = None
    bio: str | None = None
    favorite_genre_id: int | None = None


class Removal(NamedTuple):
    user_id: int
    anime_id: int
    rated: bool


class WishlistAdd(NamedTuple):
    user: UserRef
    anime_id: int
    status: str
    episodes_watched: int


class Progress(NamedTuple):
    user_id: int
    anime_id: int
    status: str
    episodes_watched: int
    kind: str  # started, watched (more episodes), completed, paused, resumed or dropped


class NewRating(NamedTuple):
    user: UserRef
    anime_id: int
    score: int


class Rerate(NamedTuple):
    user_id: int
    anime_id: int
    score: int


@dataclass
class TickPlan:
    new_users: list[NewUser] = field(default_factory=list)
    profile_edits: list[ProfileEdit] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    wishlist_adds: list[WishlistAdd] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    ratings: list[NewRating] = field(default_factory=list)
    rerates: list[Rerate] = field(default_factory=list)

    def progress_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for p in self.progress:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        return dict(sorted(kinds.items()))


def user_bias(username: str) -> float:
    """A user's lasting leniency, a function of the username so it holds across ticks."""
    digest = hashlib.blake2b(username.encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return USER_BIAS.inv_cdf(unit)


def weighted_sample(
    rng: random.Random, items: Sequence[T], weight: Callable[[T], float], k: int
) -> list[T]:
    """k items without replacement, each drawn with probability proportional to its weight
    (Efraimidis-Spirakis keys); items of weight 0 are never drawn. Order follows the keys."""
    if k <= 0:
        return []
    keyed = []
    for index, item in enumerate(items):
        w = weight(item)
        if w > 0:
            keyed.append((rng.random() ** (1.0 / w), index, item))
    return [item for _, _, item in heapq.nlargest(k, keyed, key=lambda t: (t[0], -t[1]))]


class _AnimePicker:
    """Anime by popularity, with a user's favorite genre preferred by `taste`."""

    def __init__(self, catalog: Catalog, taste: float) -> None:
        self.taste = taste
        self.everything = Weighted((a, a.weight) for a in catalog.anime)
        by_genre: defaultdict[int, list[Anime]] = defaultdict(list)
        for a in catalog.anime:
            for genre_id in sorted(a.genres):
                by_genre[genre_id].append(a)
        self.by_genre = {g: Weighted((a, a.weight) for a in pool) for g, pool in by_genre.items()}

    def pick(self, rng: random.Random, favorite: int | None) -> Anime:
        if favorite is not None and favorite in self.by_genre and rng.random() < self.taste:
            return self.by_genre[favorite].draw(rng)
        return self.everything.draw(rng)


class _Planner:
    def __init__(
        self, rng: random.Random, catalog: Catalog, config: TickConfig, users: Sequence[User]
    ) -> None:
        self.rng = rng
        self.catalog = catalog
        self.config = config
        self.users = {u.user_id: u for u in users}
        self.anime = catalog.by_id()
        self.genres = Weighted((g, g.weight) for g in catalog.genres)
        self.picker = _AnimePicker(catalog, config.taste)
        self.plan = TickPlan()

    def score(self, user: UserRef, anime: Anime) -> int:
        """The score `user` gives `anime`: its public score, their bias and taste, some noise."""
        who = user if isinstance(user, NewUser) else self.users[user]
        base = anime.score if anime.score is not None else self.catalog.mean_score
        bonus = FAVORITE_GENRE_BONUS if who.favorite_genre_id in anime.genres else 0.0
        raw = base + user_bias(who.username) + bonus + self.rng.gauss(0.0, SCORE_NOISE)
        return min(10, max(1, round(raw)))

    def new_users(self) -> None:
        names: set[str] = set()
        users = []
        for _ in range(self.config.new_users):
            name = people.username(self.rng)
            for _retry in range(5):
                if name not in names:
                    break
                name = people.username(self.rng)
            else:
                continue
            names.add(name)
            genre = self.genres.draw(self.rng) if self.genres else None
            users.append(
                NewUser(
                    username=name,
                    email=people.email(name),
                    display_name=people.display_name(self.rng, name),
                    country_code=people.country_code(self.rng),
                    birth_year=people.birth_year(self.rng),
                    favorite_genre_id=None if genre is None else genre.genre_id,
                    bio=people.bio(self.rng, None if genre is None else genre.name),
                )
            )
        # Inserted in username order, so that concurrent ticks meet shared names in one order.
        self.plan.new_users = sorted(users, key=lambda u: u.username)

    def profile_edits(self) -> None:
        genres = self.catalog.genres
        users = list(self.users.values())
        for user in self.rng.sample(users, min(self.config.profile_edits, len(users))):
            roll = self.rng.random()
            if roll < 0.5 or not genres:
                genre = next((g for g in genres if g.genre_id == user.favorite_genre_id), None)
                text = people.bio(self.rng, None if genre is None else genre.name)
                edit = ProfileEdit(user.user_id, bio=text or "Still figuring out what I like.")
            elif roll < 0.7:
                edit = ProfileEdit(
                    user.user_id, display_name=people.display_name(self.rng, user.username)
                )
            elif roll < 0.85:
                edit = ProfileEdit(user.user_id, country_code=people.country_code(self.rng) or "JP")
            else:
                favorite = self.genres.draw(self.rng)
                edit = ProfileEdit(user.user_id, favorite_genre_id=favorite.genre_id)
            self.plan.profile_edits.append(edit)

    def removals(self, entries: Sequence[Entry]) -> set[tuple[int, int]]:
        chosen = weighted_sample(
            self.rng, entries, lambda e: REMOVAL_WEIGHT[e.status], self.config.removals
        )
        self.plan.removals = sorted(
            (Removal(e.user_id, e.anime_id, e.score is not None) for e in chosen),
            key=lambda r: (r.user_id, r.anime_id),
        )
        return {(e.user_id, e.anime_id) for e in chosen}

    def progress(self, entries: Sequence[Entry]) -> dict[tuple[int, int], Progress]:
        def movable(e: Entry) -> float:
            if e.status in ("completed", "dropped") or not self.anime[e.anime_id].aired:
                return 0.0
            return 1.0

        moved = {}
        for e in weighted_sample(self.rng, entries, movable, self.config.progressions):
            anime = self.anime[e.anime_id]
            step = self._next(e, anime)
            if step is not None:
                if anime.episodes is not None and step.episodes_watched > anime.episodes:
                    # the catalog may have shortened the anime since the entry was written
                    step = step._replace(episodes_watched=anime.episodes)
                moved[(e.user_id, e.anime_id)] = step
        self.plan.progress = [moved[key] for key in sorted(moved)]
        return moved

    def _next(self, e: Entry, anime: Anime) -> Progress | None:
        episodes = anime.episodes
        if e.status == "plan_to_watch":
            watched = self.rng.randint(1, min(3, episodes or 3))
            status = "completed" if episodes is not None and watched >= episodes else "watching"
            return Progress(e.user_id, e.anime_id, status, watched, "started")
        if e.status == "on_hold":
            kind = ON_HOLD_NEXT.draw(self.rng)
            status = "watching" if kind == "resumed" else "dropped"
            return Progress(e.user_id, e.anime_id, status, e.episodes_watched, kind)
        if e.status != "watching":
            return None
        kind = WATCHING_NEXT.draw(self.rng)
        if e.score is not None and kind in ("paused", "dropped"):
            kind = "watched"  # a rated entry stays watching or completed (the rule)
        if kind == "completed" and episodes is None:
            kind = "watched"  # nobody completes what is still airing
        if kind == "paused":
            return Progress(e.user_id, e.anime_id, "on_hold", e.episodes_watched, kind)
        if kind == "dropped":
            return Progress(e.user_id, e.anime_id, "dropped", e.episodes_watched, kind)
        if kind == "completed":
            assert episodes is not None
            return Progress(e.user_id, e.anime_id, "completed", episodes, kind)
        watched = e.episodes_watched + self.rng.randint(1, max(1, (episodes or 24) // 4))
        if episodes is not None and watched >= episodes:
            return Progress(e.user_id, e.anime_id, "completed", episodes, "completed")
        return Progress(e.user_id, e.anime_id, "watching", watched, "watched")

    def wishlist_adds(self, entries: Sequence[Entry]) -> None:
        # Lists by user: an existing user's id, or a new user's name (ints and strings never meet).
        listed: defaultdict[int | str, set[int]] = defaultdict(set)
        for e in entries:
            listed[e.user_id].add(e.anime_id)
        pool: list[tuple[int | str, UserRef, int | None]] = [
            (u.user_id, u.user_id, u.favorite_genre_id) for u in self.users.values()
        ]
        pool += [(u.username, u, u.favorite_genre_id) for u in self.plan.new_users]
        if not pool:
            return
        rng, pick, adds = self.rng, self.picker.pick, self.plan.wishlist_adds
        for _ in range(self.config.wishlist_adds):
            key, user, favorite = pool[int(rng.random() * len(pool))]
            seen = listed[key]
            for _try in range(TRIES_PER_ADD):
                anime = pick(rng, favorite)
                if anime.anime_id not in seen:
                    break
            else:
                continue
            seen.add(anime.anime_id)
            episodes = anime.episodes
            status = NEW_ENTRY_STATUS.draw(rng) if anime.aired else "plan_to_watch"
            if status == "completed" and episodes is not None:
                watched = episodes
            elif status == "plan_to_watch":
                watched = 0
            else:  # watching, or "completed" something still airing: nobody completes that
                status = "watching"
                watched = 1 + int(rng.random() * max(1, (episodes or 25) - 1))
            adds.append(WishlistAdd(user, anime.anime_id, status, watched))

    def ratings(self, entries: Sequence[Entry], moved: dict[tuple[int, int], Progress]) -> None:
        """Ratings of unrated entries (`entries` are the kept ones) and of this tick's adds."""
        candidates: list[tuple[UserRef, int, str]] = []
        for e in entries:
            key = (e.user_id, e.anime_id)
            status = moved[key].status if key in moved else e.status
            if e.score is None and status in RATEABLE:
                candidates.append((e.user_id, e.anime_id, status))
        candidates += [
            (add.user, add.anime_id, add.status)
            for add in self.plan.wishlist_adds
            if add.status in RATEABLE
        ]
        for who, anime_id, _status in weighted_sample(
            self.rng, candidates, lambda c: RATING_WEIGHT[c[2]], self.config.ratings
        ):
            score = self.score(who, self.anime[anime_id])
            self.plan.ratings.append(NewRating(who, anime_id, score))

    def rerates(self, entries: Sequence[Entry]) -> None:
        """New scores for rated entries (`entries` are the kept ones)."""
        rated = [e for e in entries if e.score is not None]
        for e in self.rng.sample(rated, min(self.config.rerates, len(rated))):
            assert e.score is not None
            score = self.score(e.user_id, self.anime[e.anime_id])
            if score == e.score:  # a second look moves the score by one, within 1..10
                score = (
                    e.score + 1
                    if e.score < 10 and (e.score == 1 or self.rng.random() < 0.5)
                    else e.score - 1
                )
            self.plan.rerates.append(Rerate(e.user_id, e.anime_id, score))
        self.plan.rerates.sort(key=lambda r: (r.user_id, r.anime_id))


def plan_tick(
    rng: random.Random,
    catalog: Catalog,
    users: Sequence[User],
    entries: Sequence[Entry],
    config: TickConfig,
) -> TickPlan:
    """The tick's rows. `users` are the acting users (locked), `entries` their list entries."""
    planner = _Planner(rng, catalog, config, users)
    planner.new_users()
    planner.profile_edits()
    removed = planner.removals(entries)
    kept = [e for e in entries if (e.user_id, e.anime_id) not in removed]
    moved = planner.progress(kept)
    planner.wishlist_adds(entries)  # the removed ones too: nobody re-adds what they just removed
    planner.ratings(kept, moved)
    planner.rerates(kept)
    return planner.plan
