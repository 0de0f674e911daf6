"""Audit columns, the business rule and tombstones, as the database enforces them for any client."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg.rows import TupleRow

Conn = psycopg.Connection[TupleRow]


def make_user(conn: Conn, name: str = "alice") -> int:
    row = conn.execute(
        "insert into app.users (username, email, display_name) values (%s, %s, %s) returning user_id",
        (name, f"{name}@example.org", name.title()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def anime_id(conn: Conn, mal_id: int) -> int:
    row = conn.execute("select anime_id from app.anime where mal_id = %s", (mal_id,)).fetchone()
    assert row is not None
    return int(row[0])


def add_to_wishlist(conn: Conn, user: int, anime: int, status: str, episodes: int = 0) -> int:
    row = conn.execute(
        "insert into app.wishlist (user_id, anime_id, status, episodes_watched)"
        " values (%s, %s, %s, %s) returning wishlist_id",
        (user, anime, status, episodes),
    ).fetchone()
    assert row is not None
    return int(row[0])


def dates(conn: Conn, table: str, key: str, value: int) -> tuple[dt.datetime, dt.datetime]:
    row = conn.execute(
        f"select created_date, modified_date from app.{table} where {key} = %s", (value,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def audited_row(conn: Conn, table: str) -> tuple[str, int, str]:
    """A row of an audited table: (key column, key value, a column whose value can change)."""
    if table == "anime":
        return "anime_id", anime_id(conn, 6), "title_english"
    if table == "original_creators":
        row = conn.execute("select creator_id from app.original_creators limit 1").fetchone()
        assert row is not None
        return "creator_id", int(row[0]), "name"
    user = make_user(conn)
    if table == "users":
        return "user_id", user, "display_name"
    wishlist = add_to_wishlist(conn, user, anime_id(conn, 6), "watching", 3)
    if table == "wishlist":
        return "wishlist_id", wishlist, "episodes_watched"
    row = conn.execute(
        "insert into app.ratings (user_id, anime_id, score) values (%s, %s, 7) returning rating_id",
        (user, anime_id(conn, 6)),
    ).fetchone()
    assert row is not None
    return "rating_id", int(row[0]), "score"


NEW_VALUE = {
    "title_english": "'Trigun!'",
    "name": "'Renamed'",
    "display_name": "'Alice B.'",
    "episodes_watched": "4",
    "score": "9",
}
AUDITED = ["anime", "original_creators", "users", "wishlist", "ratings"]


@pytest.mark.parametrize("table", AUDITED)
def test_insert_sets_both_dates_and_overrides_client_values(conn: Conn, table: str) -> None:
    key, value, _ = audited_row(conn, table)
    created, modified = dates(conn, table, key, value)
    if table in ("users", "wishlist", "ratings"):
        assert created == modified
        now = conn.execute("select now()").fetchone()
        assert now is not None and abs((now[0] - created).total_seconds()) < 60

    conn.execute(
        "insert into app.users (username, email, display_name, created_date, modified_date)"
        " values ('carol', 'carol@example.org', 'Carol', '2001-01-01', '2001-01-01')"
    )
    carol = conn.execute(
        "select created_date, modified_date from app.users where username = 'carol'"
    ).fetchone()
    assert carol is not None
    assert carol[0].year != 2001 and carol[1].year != 2001


@pytest.mark.parametrize("table", AUDITED)
def test_update_without_change_keeps_modified_date(conn: Conn, table: str) -> None:
    key, value, column = audited_row(conn, table)
    before = dates(conn, table, key, value)
    conn.execute(f"update app.{table} set {column} = {column} where {key} = %s", (value,))
    assert dates(conn, table, key, value) == before


@pytest.mark.parametrize("table", AUDITED)
def test_real_change_moves_modified_date_only(conn: Conn, table: str) -> None:
    key, value, column = audited_row(conn, table)
    created, modified = dates(conn, table, key, value)
    conn.execute(
        f"update app.{table} set {column} = {NEW_VALUE[column]} where {key} = %s", (value,)
    )
    created_after, modified_after = dates(conn, table, key, value)
    assert created_after == created
    assert modified_after > modified


@pytest.mark.parametrize("table", AUDITED)
def test_created_date_cannot_change_and_modified_date_is_not_the_clients(
    conn: Conn, table: str
) -> None:
    key, value, _ = audited_row(conn, table)
    created, modified = dates(conn, table, key, value)
    conn.execute(
        f"update app.{table} set created_date = '1999-01-01', modified_date = '1999-01-01'"
        f" where {key} = %s",
        (value,),
    )
    assert dates(conn, table, key, value) == (created, modified)


def test_modified_date_never_goes_back_when_an_older_transaction_updates(pg, app_db: str) -> None:
    """A transaction that started before the row's last change still moves modified_date forward."""
    with pg.connect(app_db) as older, pg.connect(app_db, autocommit=True) as newer:
        older.execute("select now()")  # the older transaction starts here
        user = make_user(newer, "dave")  # written later, by a transaction that commits first
        _, modified = dates(newer, "users", "user_id", user)
        older.execute("update app.users set bio = 'hello' where user_id = %s", (user,))
        older.commit()
        created_after, modified_after = dates(newer, "users", "user_id", user)
        assert modified_after > modified >= created_after


# --- the business rule ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["watching", "completed"])
def test_rating_accepted_while_watching_or_completed(conn: Conn, status: str) -> None:
    user, trigun = make_user(conn), anime_id(conn, 6)
    add_to_wishlist(conn, user, trigun, status)
    conn.execute(
        "insert into app.ratings (user_id, anime_id, score) values (%s, %s, 8)", (user, trigun)
    )
    conn.execute("update app.ratings set score = 9 where user_id = %s", (user,))
    assert conn.execute("select score from app.ratings where user_id = %s", (user,)).fetchone() == (
        9,
    )


@pytest.mark.parametrize("status", ["plan_to_watch", "on_hold", "dropped", None])
def test_rating_refused_otherwise_with_a_message_naming_user_anime_and_rule(
    conn: Conn, status: str | None
) -> None:
    user, trigun = make_user(conn), anime_id(conn, 6)
    if status is not None:
        add_to_wishlist(conn, user, trigun, status)
    with pytest.raises(
        psycopg.errors.CheckViolation, match=rf"user {user} may rate anime {trigun} only while"
    ) as err:
        # a valid rating in the same statement does not hide the invalid one
        other = anime_id(conn, 1)
        add_to_wishlist(conn, user, other, "completed")
        conn.execute(
            "insert into app.ratings (user_id, anime_id, score) values (%s, %s, 8), (%s, %s, 5)",
            (user, other, user, trigun),
        )
    assert "watching or completed" in str(err.value)
    assert err.value.diag.constraint_name == "ratings_need_watching_or_completed"
    assert conn.execute(
        "select count(*) from app.ratings where user_id = %s", (user,)
    ).fetchone() == (0,)


def test_rated_entry_cannot_leave_watching_or_completed(conn: Conn) -> None:
    user, trigun = make_user(conn), anime_id(conn, 6)
    add_to_wishlist(conn, user, trigun, "watching", 5)
    conn.execute(
        "insert into app.ratings (user_id, anime_id, score) values (%s, %s, 8)", (user, trigun)
    )
    conn.execute(
        "update app.wishlist set status = 'completed', episodes_watched = 26 where user_id = %s",
        (user,),
    )
    with pytest.raises(
        psycopg.errors.CheckViolation, match=rf"user {user} has rated anime {trigun}"
    ):
        conn.execute("update app.wishlist set status = 'dropped' where user_id = %s", (user,))
    # removing the entry needs the rating removed too (foreign key, checked at commit)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        conn.execute("delete from app.wishlist where user_id = %s", (user,))
    with conn.transaction():
        conn.execute("delete from app.ratings where user_id = %s", (user,))
        conn.execute("delete from app.wishlist where user_id = %s", (user,))


def test_episodes_watched_cannot_exceed_the_anime(conn: Conn) -> None:
    user, trigun, one_piece = make_user(conn), anime_id(conn, 6), anime_id(conn, 21)
    with pytest.raises(psycopg.errors.CheckViolation, match=r"watched 27 episodes .* only 26"):
        add_to_wishlist(conn, user, trigun, "watching", 27)
    add_to_wishlist(conn, user, trigun, "completed", 26)
    add_to_wishlist(conn, user, one_piece, "watching", 1100)  # episode count unknown: no bound
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update app.wishlist set episodes_watched = 30 where anime_id = %s", (trigun,))


def test_rule_holds_under_concurrent_rating_and_status_change(pg, app_db: str) -> None:
    """A rating and a status change racing on one entry: one of them waits and then fails."""
    with pg.connect(app_db, autocommit=True) as setup:
        user, trigun = make_user(setup), anime_id(setup, 6)
        add_to_wishlist(setup, user, trigun, "watching")
    with pg.connect(app_db) as rater, pg.connect(app_db) as changer:
        rater.execute(
            "insert into app.ratings (user_id, anime_id, score) values (%s, %s, 8)", (user, trigun)
        )
        changer.execute("set lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            # the status change must wait for the rating's transaction, not slip past it
            changer.execute(
                "update app.wishlist set status = 'dropped' where user_id = %s", (user,)
            )
        changer.rollback()
        rater.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            changer.execute(
                "update app.wishlist set status = 'dropped' where user_id = %s", (user,)
            )


# --- tombstones ----------------------------------------------------------------------------


def test_deletes_leave_tombstones(conn: Conn) -> None:
    user, trigun, bebop = make_user(conn), anime_id(conn, 6), anime_id(conn, 1)
    first = add_to_wishlist(conn, user, trigun, "plan_to_watch")
    second = add_to_wishlist(conn, user, bebop, "plan_to_watch")
    conn.execute("delete from app.wishlist where user_id = %s", (user,))
    conn.execute("delete from app.users where user_id = %s", (user,))
    tombstones = conn.execute(
        "select table_name, key_value from etl.tombstones order by tombstone_id"
    ).fetchall()
    assert sorted(tombstones[:2]) == [("app.wishlist", first), ("app.wishlist", second)]
    assert tombstones[2] == ("app.users", user)


def test_truncate_is_refused_on_exported_tables(conn: Conn) -> None:
    make_user(conn)
    with pytest.raises(psycopg.errors.RaiseException, match=r"truncate refused on app\.users"):
        conn.execute("truncate app.users cascade")
    assert conn.execute("select count(*) from app.users").fetchone() == (1,)
