"""The generators against a real database built by dbt: rules after many ticks, determinism,
the generator role's privileges, whole-tick rollback and retry, and the plain function."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import psycopg
import pytest

from generators import CatalogMissing, TickConfig, TickSummary, run_tick
from generators import tick as tick_module
from generators.plan import NewRating, NewUser, TickPlan, WishlistAdd
from generators.state import Conn
from generators.write import KINDS, write_plan
from tests.generator_helpers import catalog_template, data_rows, rule_breaches, table_counts
from tests.pg_harness import Server

LIVELY = TickConfig(new_users=15, active_users=40, profile_edits=5, wishlist_adds=120,
                    progressions=80, ratings=50, rerates=10, removals=6)  # fmt: skip


_numbers = itertools.count(1)


@pytest.fixture
def catalog_db(pg: Server, built_template: str) -> str:
    """A fresh database built by dbt with a synthetic catalog of 400 anime."""
    name = f"gen_catalog_{next(_numbers)}"
    pg.create_database(name, template=catalog_template(pg, built_template))
    return name


@pytest.fixture
def superuser(pg: Server, catalog_db: str) -> Iterator[Conn]:
    with pg.connect(catalog_db, autocommit=True) as connection:
        yield connection


def ticks(
    pg: Server, dbname: str, count: int, config: TickConfig, first_seed: int = 1
) -> list[TickSummary]:
    settings = pg.settings(dbname)
    return [run_tick(config.with_seed(first_seed + i), settings) for i in range(count)]


def test_many_ticks_keep_every_rule_and_do_every_kind_of_thing(
    pg: Server, catalog_db: str, superuser: Conn
) -> None:
    summaries = ticks(pg, catalog_db, 30, LIVELY)
    assert rule_breaches(superuser) == {}
    totals = {kind: sum(s.counts[kind] for s in summaries) for kind in KINDS}
    assert all(totals[kind] > 0 for kind in KINDS), totals
    statuses = {s for (s,) in superuser.execute("select distinct status from app.wishlist")}
    assert statuses == {"plan_to_watch", "watching", "completed", "on_hold", "dropped"}
    counts = table_counts(superuser)
    assert counts["app.users"] == totals["users_created"] == 30 * 15
    assert counts["app.wishlist"] == totals["wishlist_added"] - totals["wishlist_removed"]
    assert counts["app.ratings"] == totals["ratings_added"] - totals["ratings_removed"]
    # removals reached the lake's tombstones through the database's triggers
    assert counts["etl.tombstones"] == totals["wishlist_removed"] + totals["ratings_removed"]
    # edited rows moved modified_date past created_date; untouched ones did not
    edited = superuser.execute(
        "select count(*) from app.users where modified_date > created_date"
    ).fetchone()
    assert edited is not None and 0 < edited[0] <= totals["users_edited"]


def test_fixture_catalog_with_unknown_and_unaired_episodes(pg: Server, app_db: str) -> None:
    """The 5 real anime: One Piece has no episode count, one is not yet aired, one unscored."""
    ticks(pg, app_db, 20, TickConfig(new_users=4, wishlist_adds=15, progressions=15, ratings=8))
    with pg.connect(app_db) as conn:
        assert rule_breaches(conn) == {}
        watched = conn.execute(
            "select max(episodes_watched) from app.wishlist w join app.anime a using (anime_id)"
            " where a.mal_id = 21"
        ).fetchone()
        assert watched is not None and watched[0] is not None  # One Piece is being watched


def test_same_seed_same_rows_other_seed_other_rows(pg: Server, built_template: str) -> None:
    template = catalog_template(pg, built_template)
    for name in ("gen_same_a", "gen_same_b", "gen_other"):
        pg.create_database(name, template=template)
    ticks(pg, "gen_same_a", 6, LIVELY, first_seed=11)
    ticks(pg, "gen_same_b", 6, LIVELY, first_seed=11)
    ticks(pg, "gen_other", 6, LIVELY, first_seed=12)
    with pg.connect("gen_same_a") as a, pg.connect("gen_same_b") as b, pg.connect("gen_other") as c:
        rows_a = data_rows(a)
        assert len(rows_a["ratings"]) > 100
        assert rows_a == data_rows(b)
        assert rows_a["users"] != data_rows(c)["users"]


def test_generator_acts_with_its_role_only_and_a_failed_tick_leaves_nothing(
    pg: Server, catalog_db: str, superuser: Conn
) -> None:
    run_tick(LIVELY.with_seed(1), pg.settings(catalog_db))
    before = table_counts(superuser)
    tombstones = before["etl.tombstones"]
    # the superuser the test connects as could write ratings; the generator role no longer can
    superuser.execute("revoke insert on app.ratings from animedb_generator")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="ratings"):
        run_tick(LIVELY.with_seed(2), pg.settings(catalog_db))
    # users, wishlist changes and removals were written before the ratings: all rolled back
    assert table_counts(superuser) == before
    assert table_counts(superuser)["etl.tombstones"] == tombstones


def test_the_database_refuses_what_the_generator_would_not_plan(
    pg: Server, catalog_db: str
) -> None:
    """The rule lives in the database: the generator's bulk path cannot write around it."""
    run_tick(TickConfig(new_users=3, wishlist_adds=0, seed=1), pg.settings(catalog_db))
    with pg.connect(catalog_db) as conn:
        conn.execute("set role animedb_generator")
        user, anime = conn.execute(
            "select min(user_id), min(anime_id) from app.users, app.anime"
        ).fetchone() or (0, 0)
        plan = TickPlan(
            wishlist_adds=[WishlistAdd(user, anime, "plan_to_watch", 0)],
            ratings=[NewRating(user, anime, 8)],
        )
        with pytest.raises(
            psycopg.errors.CheckViolation, match="only while it is on their wishlist"
        ):
            write_plan(conn, plan)
        conn.rollback()
        too_many = TickPlan(wishlist_adds=[WishlistAdd(user, anime, "watching", 10_000)])
        episodes = conn.execute("select episodes from app.anime where anime_id = %s", (anime,))
        if (episodes.fetchone() or (None,))[0] is not None:
            with pytest.raises(psycopg.errors.CheckViolation, match="which has only"):
                write_plan(conn, too_many)


def test_an_empty_plan_writes_nothing_and_counts_every_kind(pg: Server, catalog_db: str) -> None:
    with pg.connect(catalog_db) as conn:
        before = table_counts(conn)
        conn.execute("set role animedb_generator")
        steps: list[str] = []
        counts = write_plan(conn, TickPlan(), on_step=steps.append)
        assert list(counts.items()) == [(kind, 0) for kind in KINDS]  # in the summary's order
        assert steps == ["users", "wishlist", "ratings"]
        conn.execute("reset role")
        assert table_counts(conn) == before


def test_a_new_user_whose_name_was_taken_meanwhile_is_left_out_with_their_rows(
    pg: Server, catalog_db: str
) -> None:
    """A concurrent tick may create a planned username first: the rest of the plan is written."""
    with pg.connect(catalog_db) as conn:
        conn.execute("set role animedb_generator")
        row = conn.execute(
            "select min(anime_id) from app.anime where airing_status <> 'Not yet aired'"
        ).fetchone()
        assert row is not None
        anime = int(row[0])
        fresh, taken = (
            NewUser(name, f"{name}@example.org", "Ren", None, None, None, None)
            for name in ("fresh_name1", "taken_name1")
        )
        write_plan(conn, TickPlan(new_users=[taken]))  # the other tick
        counts = write_plan(
            conn,
            TickPlan(
                new_users=[fresh, taken],
                wishlist_adds=[WishlistAdd(u, anime, "watching", 1) for u in (fresh, taken)],
                ratings=[NewRating(fresh, anime, 8), NewRating(taken, anime, 7)],
            ),
        )
        assert counts == dict.fromkeys(KINDS, 0) | {
            "users_created": 1,
            "wishlist_added": 1,
            "ratings_added": 1,
        }
        written = conn.execute(
            "select u.username, r.score from app.wishlist as w"
            " join app.users as u using (user_id)"
            " join app.ratings as r using (user_id, anime_id)"
        ).fetchall()
        assert written == [("fresh_name1", 8)]


def test_a_lost_race_is_retried_whole(pg: Server, built_template: str, monkeypatch) -> None:
    template = catalog_template(pg, built_template)
    pg.create_database("gen_retry", template=template)
    pg.create_database("gen_clean", template=template)
    real_write = write_plan
    attempts: list[int] = []

    def deadlock_once(conn, plan, on_step=None):
        counts = real_write(conn, plan, on_step)  # everything written, then the race is lost
        attempts.append(1)
        if len(attempts) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected (simulated)")
        return counts

    monkeypatch.setattr(tick_module, "write_plan", deadlock_once)
    monkeypatch.setattr(tick_module, "BACKOFF_FIRST_S", 0.001)
    summary = run_tick(LIVELY.with_seed(5), pg.settings("gen_retry"))
    assert summary.retries == 1 and len(attempts) == 2
    monkeypatch.setattr(tick_module, "write_plan", real_write)
    clean = run_tick(LIVELY.with_seed(5), pg.settings("gen_clean"))
    assert summary.counts == clean.counts
    with pg.connect("gen_retry") as retried, pg.connect("gen_clean") as once:
        # the same rows once (ids differ: the rolled-back attempt used sequence values)
        def without_ids(conn: Conn) -> list[tuple[object, ...]]:
            return conn.execute(
                "select username, email, bio from app.users order by username"
            ).fetchall()

        assert without_ids(retried) == without_ids(once)
        assert table_counts(retried) == table_counts(once)


def test_retries_are_bounded(pg: Server, catalog_db: str, monkeypatch) -> None:
    def always(conn, plan, on_step=None):
        raise psycopg.errors.SerializationFailure("could not serialize access (simulated)")

    monkeypatch.setattr(tick_module, "write_plan", always)
    monkeypatch.setattr(tick_module, "BACKOFF_FIRST_S", 0.001)
    with pytest.raises(tick_module.TickFailed, match="lost 3 races in a row"):
        run_tick(TickConfig(seed=1, max_retries=2), pg.settings(catalog_db))


def test_no_catalog_is_one_clear_error(pg: Server, built_template: str, app_db: str) -> None:
    pg.create_database("gen_empty")
    with pytest.raises(CatalogMissing, match=r"app\.anime.* missing .*animedb db build"):
        run_tick(TickConfig(seed=1), pg.settings("gen_empty"))
    with pg.connect(app_db) as conn:
        conn.execute("set session_replication_role = replica")  # skip the bridge tables' keys
        conn.execute("delete from app.anime")
        conn.commit()
    with pytest.raises(CatalogMissing, match=r"no listed anime.*animedb db build"):
        run_tick(TickConfig(seed=1), pg.settings(app_db))


def test_plain_function_returns_plain_data(pg: Server, catalog_db: str) -> None:
    summary = run_tick(TickConfig(seed=9), pg.settings(catalog_db))
    data = json.loads(json.dumps(summary.as_dict()))
    assert data["seed"] == 9 and set(data["counts"]) == set(KINDS)
    assert data["rows"] == sum(data["counts"].values()) > 0
    assert set(data["phase_seconds"]) == set(tick_module.PHASES)
    assert summary.line().startswith("tick seed=9: users +5 ~0 | wishlist +")
