"""Writing a planned tick in bulk, inside the caller's transaction: one statement per kind of
change (COPY for the large inserts, set-based statements over arrays for the rest), never a
round trip per row. The database's triggers still check every row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import LiteralString

from generators.plan import NewRating, NewUser, TickPlan, UserRef, WishlistAdd
from generators.state import Conn

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
    step("users")
    created = _insert_users(conn, plan.new_users)
    counts = {"users_created": len(created), "users_edited": _edit_profiles(conn, plan)}
    step("wishlist")
    counts |= _write_wishlist(conn, plan, created)
    step("ratings")
    counts |= _write_ratings(conn, plan, created)
    return {kind: counts[kind] for kind in KINDS}


def _edit_profiles(conn: Conn, plan: TickPlan) -> int:
    return _over_arrays(
        conn,
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
        plan.profile_edits,
        ("user_id", "display_name", "country_code", "bio", "favorite_genre_id"),
    )


def _write_wishlist(conn: Conn, plan: TickPlan, created: Mapping[str, int]) -> dict[str, int]:
    """Removals (their ratings first), then the new entries, then the entries that move on. The
    statements run in the order the dict lists them: Python builds a dict display in order."""
    entry = ("user_id", "anime_id")
    return {
        "ratings_removed": _over_arrays(
            conn,
            "delete from app.ratings as r using unnest(%s::bigint[], %s::bigint[])"
            " as d(user_id, anime_id) where r.user_id = d.user_id and r.anime_id = d.anime_id",
            [r for r in plan.removals if r.rated],
            entry,
        ),
        "wishlist_removed": _over_arrays(
            conn,
            "delete from app.wishlist as w using unnest(%s::bigint[], %s::bigint[])"
            " as d(user_id, anime_id) where w.user_id = d.user_id and w.anime_id = d.anime_id",
            plan.removals,
            entry,
        ),
        "wishlist_added": _copy(
            conn,
            "copy app.wishlist (user_id, anime_id, status, episodes_watched) from stdin",
            plan.wishlist_adds,
            created,
        ),
        "wishlist_progressed": _over_arrays(
            conn,
            """
            update app.wishlist as w
            set status = p.status, episodes_watched = p.episodes_watched
            from unnest(%s::bigint[], %s::bigint[], %s::text[], %s::int[])
                as p(user_id, anime_id, status, episodes_watched)
            where w.user_id = p.user_id and w.anime_id = p.anime_id
            """,
            plan.progress,
            (*entry, "status", "episodes_watched"),
        ),
    }


def _write_ratings(conn: Conn, plan: TickPlan, created: Mapping[str, int]) -> dict[str, int]:
    """The new ratings, then the changed scores."""
    return {
        "ratings_added": _copy(
            conn, "copy app.ratings (user_id, anime_id, score) from stdin", plan.ratings, created
        ),
        "ratings_changed": _over_arrays(
            conn,
            "update app.ratings as r set score = x.score"
            " from unnest(%s::bigint[], %s::bigint[], %s::smallint[])"
            " as x(user_id, anime_id, score)"
            " where r.user_id = x.user_id and r.anime_id = x.anime_id",
            plan.rerates,
            ("user_id", "anime_id", "score"),
        ),
    }


def _insert_users(conn: Conn, users: Sequence[NewUser]) -> dict[str, int]:
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
        _arrays(users, NewUser._fields),
    ).fetchall()
    return {str(name): int(user_id) for name, user_id in rows}


def _arrays(rows: Sequence[tuple[object, ...]], fields: Sequence[str]) -> list[list[object]]:
    """The rows as one list per field, in the order of `fields`: an unnest's parameters."""
    return [[getattr(row, name) for row in rows] for name in fields]


def _over_arrays(
    conn: Conn, statement: LiteralString, rows: Sequence[tuple[object, ...]], fields: Sequence[str]
) -> int:
    """One set-based statement over `rows` passed as arrays (see `_arrays`); returns the rows it
    changed. No rows, no round trip."""
    if not rows:
        return 0
    return conn.execute(statement, _arrays(rows, fields)).rowcount


def _user_id(user: UserRef, created: Mapping[str, int]) -> int | None:
    # None: the username was taken meanwhile (by a concurrent tick): the user was not created
    return created.get(user.username) if isinstance(user, NewUser) else user


def _copy(
    conn: Conn,
    statement: LiteralString,
    rows: Sequence[WishlistAdd] | Sequence[NewRating],
    created: Mapping[str, int],
    chunk: int = 10_000,
) -> int:
    """COPY rows that start with a user, written with the user's id; the rows of a new user who
    was not created are left out. Text format: numbers and status words only, nothing to
    escape. Returns rows copied."""
    lines = [
        "\t".join(map(str, (user_id, *row[1:]))) + "\n"
        for row in rows
        if (user_id := _user_id(row.user, created)) is not None
    ]
    if not lines:
        return 0
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            for start in range(0, len(lines), chunk):
                copy.write("".join(lines[start : start + chunk]))
        return cur.rowcount if cur.rowcount >= 0 else len(lines)
