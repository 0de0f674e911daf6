"""What a tick reads before it plans: the catalog, the users who act, and their lists, always in
one order (ORDER BY) so that the same seed on the same database plans the same rows."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from animedb.vocabulary import WRITTEN_TABLES
from generators.config import CatalogMissing

Conn = psycopg.Connection[TupleRow]

RATEABLE = ("watching", "completed")
# Unlisted anime dropped out of the crawl: users rarely find them any more.
UNLISTED_WEIGHT = 0.02
NEEDED_TABLES = ("app.anime", "app.genres", "app.anime_genres", *WRITTEN_TABLES)
BUILD_HINT = "run `animedb db build` to load the catalog"


@dataclass(frozen=True)
class Anime:
    anime_id: int
    weight: float
    """Popularity: MyAnimeList members (+1, so that an anime nobody joined can still be found)."""
    score: float | None
    episodes: int | None
    """None while unknown (still airing): no bound on episodes watched."""
    aired: bool
    """False while not yet aired: people can only plan to watch it."""
    genres: frozenset[int]


@dataclass(frozen=True)
class Genre:
    genre_id: int
    name: str
    weight: float
    """The summed popularity of its anime: how many users would name it their favorite."""


@dataclass(frozen=True)
class Catalog:
    anime: tuple[Anime, ...]
    genres: tuple[Genre, ...]
    mean_score: float

    def by_id(self) -> dict[int, Anime]:
        return {a.anime_id: a for a in self.anime}


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    favorite_genre_id: int | None


@dataclass(frozen=True)
class Entry:
    """A wishlist entry of an acting user, with its rating's score if rated."""

    user_id: int
    anime_id: int
    status: str
    episodes_watched: int
    score: int | None


def check_tables(conn: Conn) -> None:
    missing = [
        name
        for (name,) in conn.execute(
            "select name from unnest(%s::text[]) as t(name) where to_regclass(name) is null",
            (list(NEEDED_TABLES),),
        ).fetchall()
    ]
    if missing:
        raise CatalogMissing(
            f"no catalog loaded: {', '.join(missing)} missing in the database; {BUILD_HINT}"
        )


def read_catalog(conn: Conn) -> Catalog:
    check_tables(conn)
    rows = conn.execute(
        """
        select a.anime_id, a.members, a.score, a.episodes, a.airing_status, a.is_listed,
               coalesce(array_agg(ag.genre_id order by ag.genre_id)
                        filter (where ag.genre_id is not null), '{}')
        from app.anime as a
        left join app.anime_genres as ag on ag.anime_id = a.anime_id
        group by a.anime_id
        order by a.anime_id
        """
    ).fetchall()
    anime = tuple(
        Anime(
            anime_id=int(anime_id),
            weight=(float(members or 0) + 1.0) * (1.0 if listed else UNLISTED_WEIGHT),
            score=None if score is None else float(score),
            episodes=None if episodes is None else int(episodes),
            aired=airing_status != "Not yet aired",
            genres=frozenset(int(g) for g in genre_ids),
        )
        for anime_id, members, score, episodes, airing_status, listed, genre_ids in rows
    )
    if not any(listed for *_, listed, _ in rows):
        raise CatalogMissing(f"no catalog loaded: app.anime has no listed anime; {BUILD_HINT}")

    popularity: defaultdict[int, float] = defaultdict(float)
    for a in anime:
        for genre_id in a.genres:
            popularity[genre_id] += a.weight
    genres = tuple(
        Genre(genre_id=int(genre_id), name=str(name), weight=popularity[int(genre_id)])
        for genre_id, name in conn.execute(
            # explicit genres make odd favorites for a profile; themes and demographics do not
            "select genre_id, name from app.genres where kind <> 'explicit_genre' order by genre_id"
        ).fetchall()
        if popularity[int(genre_id)] > 0
    )
    scores = [a.score for a in anime if a.score is not None]
    return Catalog(
        anime=anime,
        genres=genres,
        mean_score=sum(scores) / len(scores) if scores else 7.0,
    )


def choose_active_users(conn: Conn, rng: random.Random, count: int) -> list[int]:
    """Up to `count` user ids drawn at random, without reading every user of a big table: ids
    come from a sequence, so drawing from the id range and keeping those that exist is fair."""
    if count == 0:
        return []
    row = conn.execute("select min(user_id), max(user_id) from app.users").fetchone()
    if row is None or row[0] is None:
        return []
    low, high = int(row[0]), int(row[1])
    if high - low + 1 <= 4 * count + 100:
        ids = [int(r[0]) for r in conn.execute("select user_id from app.users order by user_id")]
        return rng.sample(ids, min(count, len(ids)))
    drawn = rng.sample(range(low, high + 1), 2 * count)
    existing = {
        int(r[0])
        for r in conn.execute("select user_id from app.users where user_id = any(%s)", (drawn,))
    }
    return [user_id for user_id in drawn if user_id in existing][:count]


def lock_users(conn: Conn, user_ids: Sequence[int]) -> list[User]:
    """Lock the acting users' rows for this tick; users another generator holds are skipped, so
    two ticks never plan changes to the same user's list and cannot race on it."""
    if not user_ids:
        return []
    rows = conn.execute(
        "select user_id, username, favorite_genre_id from app.users"
        " where user_id = any(%s) order by user_id for no key update skip locked",
        (list(user_ids),),
    ).fetchall()
    return [
        User(int(user_id), str(name), None if genre is None else int(genre))
        for user_id, name, genre in rows
    ]


def read_entries(conn: Conn, users: Sequence[User]) -> list[Entry]:
    if not users:
        return []
    rows = conn.execute(
        """
        select w.user_id, w.anime_id, w.status, w.episodes_watched, r.score
        from app.wishlist as w
        left join app.ratings as r on r.user_id = w.user_id and r.anime_id = w.anime_id
        where w.user_id = any(%s)
        order by w.user_id, w.anime_id
        """,
        ([u.user_id for u in users],),
    ).fetchall()
    return [
        Entry(
            int(user), int(anime), str(status), int(episodes), None if score is None else int(score)
        )
        for user, anime, status, episodes, score in rows
    ]
