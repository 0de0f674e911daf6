"""Helpers for the generator tests and benchmark: a synthetic catalog large enough for volume
(the fixture seeds hold 5 anime), the rule checks as SQL, and the rows that determinism compares."""

from __future__ import annotations

import random
from typing import Any

from generators.state import Conn
from tests.pg_harness import Server

GENRES = (
    ("Action", "genre"), ("Adventure", "genre"), ("Comedy", "genre"), ("Drama", "genre"),
    ("Fantasy", "genre"), ("Romance", "genre"), ("Sci-Fi", "genre"), ("Slice of Life", "genre"),
    ("Sports", "genre"), ("Mystery", "genre"), ("Horror", "genre"), ("Supernatural", "genre"),
    ("Ecchi", "explicit_genre"), ("Mecha", "theme"), ("Music", "theme"), ("Isekai", "theme"),
    ("School", "theme"), ("Historical", "theme"), ("Military", "theme"), ("Seinen", "demographic"),
    ("Shoujo", "demographic"), ("Shounen", "demographic"), ("Josei", "demographic"),
    ("Kids", "demographic"),
)  # fmt: skip
EPISODE_COUNTS = (1, 1, 12, 12, 12, 13, 24, 25, 26, 26, 50, 64, 110, None)

# What must hold after any number of ticks, whoever wrote them: name -> query counting breaches.
RULE_CHECKS = {
    "rating without a watching/completed entry": """
        select count(*) from app.ratings as r
        left join app.wishlist as w on w.user_id = r.user_id and w.anime_id = r.anime_id
        where w.status is null or w.status not in ('watching', 'completed')""",
    "episodes above the anime's count": """
        select count(*) from app.wishlist as w join app.anime as a on a.anime_id = w.anime_id
        where a.episodes is not null and w.episodes_watched > a.episodes""",
    "negative episodes": "select count(*) from app.wishlist where episodes_watched < 0",
    "unknown status": """
        select count(*) from app.wishlist
        where status not in ('plan_to_watch', 'watching', 'completed', 'on_hold', 'dropped')""",
    "score outside 1-10": "select count(*) from app.ratings where score not between 1 and 10",
    "users modified before created": "select count(*) from app.users where modified_date < created_date",
    "wishlist modified before created": "select count(*) from app.wishlist where modified_date < created_date",
    "ratings modified before created": "select count(*) from app.ratings where modified_date < created_date",
    "duplicate wishlist entry": """
        select count(*) from (select 1 from app.wishlist group by user_id, anime_id having count(*) > 1) d""",
    "bad username": r"select count(*) from app.users where username !~ '^[a-z0-9_]{3,30}$'",
    # the generator's own believability rules, not the database's
    "planned entry with episodes watched": "select count(*) from app.wishlist where status = 'plan_to_watch' and episodes_watched > 0",
    "completed without every episode": """
        select count(*) from app.wishlist as w join app.anime as a on a.anime_id = w.anime_id
        where w.status = 'completed' and a.episodes is not null and w.episodes_watched <> a.episodes""",
    "unaired anime being watched": """
        select count(*) from app.wishlist as w join app.anime as a on a.anime_id = w.anime_id
        where a.airing_status = 'Not yet aired' and w.status <> 'plan_to_watch'""",
}

DATA_QUERIES = {
    "users": "select user_id, username, email, display_name, country_code, birth_year,"
    " favorite_genre_id, bio from app.users order by user_id",
    "wishlist": "select wishlist_id, user_id, anime_id, status, episodes_watched from app.wishlist"
    " order by wishlist_id",
    "ratings": "select rating_id, user_id, anime_id, score from app.ratings order by rating_id",
    "tombstones": "select table_name, key_value from etl.tombstones order by tombstone_id",
}


def rule_breaches(conn: Conn) -> dict[str, int]:
    """Every rule check with a non-zero count (an empty dict: all rules hold)."""
    found = {}
    for name, query in RULE_CHECKS.items():
        row = conn.execute(query).fetchone()
        assert row is not None
        if row[0]:
            found[name] = int(row[0])
    return found


def data_rows(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """The data columns of the generated tables (not the audit dates, which differ by design)."""
    return {name: conn.execute(query).fetchall() for name, query in DATA_QUERIES.items()}


def table_counts(conn: Conn) -> dict[str, int]:
    counts = {}
    for table in ("app.users", "app.wishlist", "app.ratings", "etl.tombstones"):
        row = conn.execute(f"select count(*) from {table}").fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def add_synthetic_catalog(conn: Conn, anime: int, seed: int = 0) -> None:
    """Add `anime` made-up anime with popularity falling off like a real catalog's (members by
    rank), scores that follow popularity loosely, 1-4 genres each, some airing or unaired."""
    rng = random.Random(seed)
    conn.execute(
        """
        insert into app.genres (genre_id, mal_id, name, kind)
        select nextval('app.genres_id_seq'), 5000 + position, name, kind
        from unnest(%s::text[], %s::text[]) with ordinality as g(name, kind, position)
        order by position
        """,
        ([name for name, _ in GENRES], [kind for _, kind in GENRES]),
    )
    rows: dict[str, list[Any]] = {k: [] for k in ("mal", "title", "episodes", "airing", "score",
                                                  "members", "listed")}  # fmt: skip
    for rank in range(1, anime + 1):
        episodes = rng.choice(EPISODE_COUNTS)
        airing = "Finished Airing"
        score: float | None = round(
            min(9.3, max(2.0, 8.9 - 2.4 * rank / anime + rng.gauss(0, 0.45))), 2
        )
        members = int(3_000_000 / rank**0.85 * rng.uniform(0.7, 1.3))
        if episodes is None:
            airing = "Currently Airing" if rng.random() < 0.7 else "Not yet aired"
            if airing == "Not yet aired":
                score, members = None, members // 20
        elif rng.random() < 0.03:
            score = None
        rows["mal"].append(1_000_000 + rank)
        rows["title"].append(f"Synthetic Anime {rank}")
        rows["episodes"].append(episodes)
        rows["airing"].append(airing)
        rows["score"].append(score)
        rows["members"].append(members)
        rows["listed"].append(rng.random() > 0.02)
    conn.execute(
        """
        insert into app.anime (anime_id, mal_id, title, episodes, airing_status, score, members,
                               is_listed, created_date, modified_date)
        select nextval('app.anime_id_seq'), mal_id, title, episodes, airing, score, members,
               listed, now(), now()
        from unnest(%s::bigint[], %s::text[], %s::int[], %s::text[], %s::numeric[], %s::bigint[],
                    %s::boolean[]) with ordinality
            as a(mal_id, title, episodes, airing, score, members, listed, position)
        order by position
        """,
        (rows["mal"], rows["title"], rows["episodes"], rows["airing"], rows["score"],
         rows["members"], rows["listed"]),
    )  # fmt: skip
    genre_ids = [
        int(r[0])
        for r in conn.execute(
            "select genre_id from app.genres where mal_id > 5000 order by genre_id"
        ).fetchall()
    ]
    pairs = []
    for mal in rows["mal"]:
        for genre in rng.sample(genre_ids, rng.randint(1, 4)):
            pairs.append((mal, genre))
    conn.execute(
        """
        insert into app.anime_genres (anime_genre_id, anime_id, genre_id)
        select nextval('app.anime_genres_id_seq'), a.anime_id, p.genre_id
        from unnest(%s::bigint[], %s::bigint[]) with ordinality as p(mal_id, genre_id, position)
        join app.anime as a on a.mal_id = p.mal_id
        order by p.position
        """,
        ([m for m, _ in pairs], [g for _, g in pairs]),
    )


_catalog_templates: dict[tuple[int, str, int], str] = {}


def catalog_template(pg: Server, built_template: str, anime: int = 400) -> str:
    """A template database: the dbt-built fixture plus a synthetic catalog, made once per server."""
    key = (pg.port, built_template, anime)
    if key not in _catalog_templates:
        name = f"animedb_catalog_{anime}"
        pg.create_database(name, template=built_template)
        with pg.connect(name) as conn:
            add_synthetic_catalog(conn, anime)
            conn.commit()
        _catalog_templates[key] = name
    return _catalog_templates[key]
