"""Writing a planned tick in bulk, inside the caller's transaction: one statement per kind of
change (COPY for the large inserts, set-based statements over arrays for the rest), never a
round trip per row. The database's triggers still check every row."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psycopg
from psycopg.rows import TupleRow

from generators.plan import NewUser, TickPlan, UserRef

Conn = psycopg.Connection[TupleRow]

# Counts by kind, in the order the summary shows them.
KINDS = (
    "users_created",
    "users_edited",
    "wishlist_added",
    "wishlist_progressed",
    "wishlist_removed",
    "ratings_added",
    "ratings_changed",
    "ratings_removed",
)


def write_plan(
    conn: Conn, plan: TickPlan, on_step: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Apply the plan; returns the rows written by kind. Statement order matters: users before
    the entries that name them, rating deletes before entry deletes, status changes before the
    ratings that need them."""
    step = on_step or (lambda _name: None)
    counts = dict.fromkeys(KINDS, 0)

    step("users")
    created = _insert_users(conn, plan.new_users)
    counts["users_created"] = len(created)
    if plan.profile_edits:
        e = plan.profile_edits
        counts["users_edited"] = conn.execute(
            """
            update app.users as u
            set display_name = coalesce(e.display_name, u.display_name),
                country_code = coalesce(e.country_code, u.country_code),
                bio = coalesce(e.bio, u.bio),
                favorite_genre_id = coalesce(e.favorite_genre_id, u.favorite_genre_id)
            from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[])
                as e(user_id, display_name, country_code, bio, favorite_genre_id)
            where u.user_id = e.user_id
            """,
            (
                [x.user_id for x in e],
                [x.display_name for x in e],
                [x.country_code for x in e],
                [x.bio for x in e],
                [x.favorite_genre_id for x in e],
            ),
        ).rowcount

    def user_id(user: UserRef) -> int | None:
        # None: the username was taken meanwhile (by a concurrent tick): the user was not created
        return created.get(user.username) if isinstance(user, NewUser) else user

    step("wishlist")
    if plan.removals:
        rated = [r for r in plan.removals if r.rated]
        if rated:
            counts["ratings_removed"] = conn.execute(
                "delete from app.ratings as r using unnest(%s::bigint[], %s::bigint[])"
                " as d(user_id, anime_id) where r.user_id = d.user_id and r.anime_id = d.anime_id",
                ([r.user_id for r in rated], [r.anime_id for r in rated]),
            ).rowcount
        counts["wishlist_removed"] = conn.execute(
            "delete from app.wishlist as w using unnest(%s::bigint[], %s::bigint[])"
            " as d(user_id, anime_id) where w.user_id = d.user_id and w.anime_id = d.anime_id",
            ([r.user_id for r in plan.removals], [r.anime_id for r in plan.removals]),
        ).rowcount
    counts["wishlist_added"] = _copy(
        conn,
        "copy app.wishlist (user_id, anime_id, status, episodes_watched) from stdin",
        (
            f"{uid}\t{a.anime_id}\t{a.status}\t{a.episodes_watched}\n"
            for a in plan.wishlist_adds
            if (uid := user_id(a.user)) is not None
        ),
    )
    if plan.progress:
        p = plan.progress
        counts["wishlist_progressed"] = conn.execute(
            """
            update app.wishlist as w
            set status = p.status, episodes_watched = p.episodes_watched
            from unnest(%s::bigint[], %s::bigint[], %s::text[], %s::int[])
                as p(user_id, anime_id, status, episodes_watched)
            where w.user_id = p.user_id and w.anime_id = p.anime_id
            """,
            (
                [x.user_id for x in p],
                [x.anime_id for x in p],
                [x.status for x in p],
                [x.episodes_watched for x in p],
            ),
        ).rowcount

    step("ratings")
    counts["ratings_added"] = _copy(
        conn,
        "copy app.ratings (user_id, anime_id, score) from stdin",
        (
            f"{uid}\t{r.anime_id}\t{r.score}\n"
            for r in plan.ratings
            if (uid := user_id(r.user)) is not None
        ),
    )
    if plan.rerates:
        r = plan.rerates
        counts["ratings_changed"] = conn.execute(
            "update app.ratings as r set score = x.score"
            " from unnest(%s::bigint[], %s::bigint[], %s::smallint[])"
            " as x(user_id, anime_id, score)"
            " where r.user_id = x.user_id and r.anime_id = x.anime_id",
            ([x.user_id for x in r], [x.anime_id for x in r], [x.score for x in r]),
        ).rowcount
    return counts


def _insert_users(conn: Conn, users: list[NewUser]) -> dict[str, int]:
    """Insert the new users (a name another tick took first is skipped, not an error); returns
    username -> user_id of those created."""
    if not users:
        return {}
    rows = conn.execute(
        """
        insert into app.users
            (username, email, display_name, country_code, birth_year, favorite_genre_id, bio)
        select username, email, display_name, country_code, birth_year, favorite_genre_id, bio
        from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::bigint[],
                    %s::text[])
            with ordinality as u(username, email, display_name, country_code, birth_year,
                                 favorite_genre_id, bio, position)
        order by position
        on conflict do nothing
        returning username, user_id
        """,
        (
            [u.username for u in users],
            [u.email for u in users],
            [u.display_name for u in users],
            [u.country_code for u in users],
            [u.birth_year for u in users],
            [u.favorite_genre_id for u in users],
            [u.bio for u in users],
        ),
    ).fetchall()
    return {str(name): int(user_id) for name, user_id in rows}


def _copy(conn: Conn, statement: str, lines: Iterable[str], chunk: int = 10_000) -> int:
    """COPY text rows (numbers and status words only: nothing to escape); returns rows copied."""
    rows = list(lines)
    if not rows:
        return 0
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            for start in range(0, len(rows), chunk):
                copy.write("".join(rows[start : start + chunk]))
        return cur.rowcount if cur.rowcount >= 0 else len(rows)
