"""The dbt project against real PostgreSQL: builds, re-runs, seed changes, bad seeds, roles."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from animedb import db
from tests import pg_harness
from tests.pg_harness import Server

Conn = psycopg.Connection[TupleRow]


def snapshot_of(conn: Conn, table: str, key: str) -> list[tuple[object, ...]]:
    return conn.execute(f"select * from app.{table} order by {key}").fetchall()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        data = list(csv.reader(f))
    return data[0], data[1:]


def add_user_activity(conn: Conn) -> None:
    conn.execute(
        "insert into app.users (username, email, display_name) values ('erin', 'erin@example.org', 'Erin')"
    )
    conn.execute(
        "insert into app.wishlist (user_id, anime_id, status, episodes_watched)"
        " select u.user_id, a.anime_id, 'completed', a.episodes from app.users u, app.anime a"
        " where u.username = 'erin' and a.mal_id in (1, 6)"
    )
    conn.execute(
        "insert into app.ratings (user_id, anime_id, score)"
        " select user_id, anime_id, 9 from app.wishlist"
    )


def test_build_creates_every_application_table(pg: Server, built_template: str) -> None:
    with pg.connect(built_template) as conn:
        counts: dict[str, float] = dict(
            conn.execute(
                "select c.relname, c.reltuples from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'app' and c.relkind = 'r'"
            ).fetchall()
        )
        assert set(counts) == {
            "anime",
            "genres",
            "studios",
            "licensors",
            "original_creators",
            "voice_actors",
            "languages",
            "characters",
            "anime_genres",
            "anime_studios",
            "anime_licensors",
            "anime_original_creators",
            "anime_voice_actors",
            "users",
            "wishlist",
            "ratings",
        }
        trigun = conn.execute(
            "select a.title, a.episodes, a.aired_from::text, a.score::text, s.name"
            " from app.anime a join app.anime_studios x using (anime_id) join app.studios s using (studio_id)"
            " where a.mal_id = 6"
        ).fetchone()
        assert trigun == ("Trigun", 26, "1998-04-01", "8.22", "Madhouse")
        # the Naruto anime's original creator comes from the manga it adapts
        assert conn.execute(
            "select c.name, x.role from app.anime a join app.anime_original_creators x using (anime_id)"
            " join app.original_creators c using (creator_id) where a.mal_id = 20"
        ).fetchall() == [("Kishimoto, Masashi", "Story & Art")]
        # a role from a person page keeps its unknown language, unless the anime's page gives it
        roles = conn.execute(
            "select v.mal_id, l.name from app.anime_voice_actors x join app.voice_actors v using (voice_actor_id)"
            " left join app.languages l using (language_id) order by 1, 2"
        ).fetchall()
        assert roles == [(11, "Japanese"), (185, None), (245, "Japanese"), (2009, "English")]
        watermarks = conn.execute(
            "select table_name, load_type from etl.exported_tables order by 1"
        ).fetchall()
        assert ("app.anime", "modified") in watermarks and ("app.genres", "id") in watermarks
        assert ("etl.tombstones", "id") in watermarks
        assert {t for t, lt in watermarks if lt == "modified"} == {
            "app.anime",
            "app.original_creators",
            "app.users",
            "app.wishlist",
            "app.ratings",
        }
        # every id comes from a sequence with cache 1, which the exporter can read
        caches = conn.execute(
            "select distinct cache_size from pg_sequences where schemaname = 'app'"
        ).fetchall()
        assert caches == [(1,)]


TABLES_AND_KEYS = [
    ("anime", "anime_id"),
    ("anime_genres", "anime_genre_id"),
    ("anime_voice_actors", "anime_voice_actor_id"),
    ("users", "user_id"),
    ("ratings", "rating_id"),
    ("original_creators", "creator_id"),
]


def test_rerun_changes_nothing(pg: Server, app_db: str, dbt_project: Path) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        add_user_activity(conn)
        before = {t: snapshot_of(conn, t, k) for t, k in TABLES_AND_KEYS}
        pg_harness.run_dbt(dbt_project, pg.env(app_db), "build")
        assert {t: snapshot_of(conn, t, k) for t, k in TABLES_AND_KEYS} == before
        assert conn.execute("select count(*) from etl.tombstones").fetchone() == (0,)


def test_full_refresh_never_destroys_user_data_or_catalog_ids(
    pg: Server, app_db: str, dbt_project: Path
) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        add_user_activity(conn)
        before = {
            t: snapshot_of(conn, t, "1")
            for t in ("users", "wishlist", "ratings", "anime", "genres")
        }
        result = pg_harness.run_dbt(dbt_project, pg.env(app_db), "run", "--full-refresh")
        assert "app.users" in result.stdout
        after = {
            t: snapshot_of(conn, t, "1")
            for t in ("users", "wishlist", "ratings", "anime", "genres")
        }
        assert after == before
        # and the constraints and triggers are still there
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("update app.ratings set score = 11")


def test_changed_seeds_touch_exactly_the_changed_rows(
    pg: Server, app_db: str, own_project: Path
) -> None:
    seeds = own_project / "seeds"
    header, anime = read_csv(seeds / "mal_anime.csv")
    score = header.index("score")
    for row in anime:
        if row[0] == "6":
            row[score] = "8.30"  # Trigun's score moved
    anime = [row for row in anime if row[0] != "1"]  # Cowboy Bebop no longer crawled
    anime.append(
        [
            "30",
            "Neon Genesis Evangelion",
            "",
            "",
            "TV",
            "26",
            "Finished Airing",
            "1995-10-04",
            "1996-03-27",
            "fall",
            "1995",
            "Original",
            "24",
            "",
            "8.35",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    write_csv(seeds / "mal_anime.csv", header, anime)
    header, links = read_csv(seeds / "mal_anime_genres.csv")
    write_csv(seeds / "mal_anime_genres.csv", header, [r for r in links if r != ["6", "50"]])

    with pg.connect(app_db, autocommit=True) as conn:
        add_user_activity(conn)  # erin rated Cowboy Bebop and Trigun
        before = {
            r[0]: r[1:]
            for r in conn.execute(
                "select mal_id, anime_id, modified_date, is_listed from app.anime"
            ).fetchall()
        }
        max_id = max(v[0] for v in before.values())
        trigun_adult_cast = conn.execute(
            "select x.anime_genre_id from app.anime_genres x join app.anime a using (anime_id)"
            " join app.genres g using (genre_id) where a.mal_id = 6 and g.mal_id = 50"
        ).fetchone()
        assert trigun_adult_cast is not None

        env = pg.env(app_db)
        pg_harness.run_dbt(own_project, env, "seed")
        pg_harness.run_dbt(own_project, env, "run")

        after = {
            r[0]: r[1:]
            for r in conn.execute(
                "select mal_id, anime_id, modified_date, is_listed from app.anime"
            ).fetchall()
        }
        changed = {m for m in before if after[m] != before[m]}
        assert changed == {6, 1}  # Trigun (score) and Cowboy Bebop (no longer listed)
        assert after[1][2] is False and after[1][0] == before[1][0]
        assert after[6][0] == before[6][0] and after[6][1] > before[6][1]
        assert after[30][0] > max_id
        # the ratings of the anime that left the crawl are intact
        assert conn.execute("select count(*) from app.ratings").fetchone() == (2,)
        # a link the seeds no longer give is deleted, and the delete is recorded for the lake
        assert conn.execute("select table_name, key_value from etl.tombstones").fetchall() == [
            ("app.anime_genres", trigun_adult_cast[0])
        ]
        # the snapshot keeps both scores of Trigun
        pg_harness.run_dbt(own_project, env, "snapshot")
        history = conn.execute(
            "select h.score::text from snapshots.anime_history h join app.anime a using (anime_id)"
            " where a.mal_id = 6 order by h.dbt_valid_from"
        ).fetchall()
        assert history == [("8.22",), ("8.30",)]


@pytest.mark.parametrize(
    ("seed", "change", "message"),
    [
        (
            "mal_anime.csv",
            lambda rows: rows[0].__setitem__(5, "twenty-six"),
            r"Error in seed mal_anime \(seeds/mal_anime.csv\).*invalid input syntax for type integer: \"twenty-six\"",
        ),
        (
            "mal_genres.csv",
            lambda rows: rows.append(list(rows[0])),
            r"seeds/mal_genres.csv: duplicate key \(genre_id\): \(1\) 2 times",
        ),
        (
            "mal_anime.csv",
            lambda rows: rows[1].__setitem__(1, ""),
            r"seeds/mal_anime.csv: 1 row\(s\) without a value in required column title",
        ),
        (
            "mal_anime_companies.csv",
            lambda rows: rows[0].__setitem__(2, "animator"),
            r"seeds/mal_anime_companies.csv: column role has unknown value\(s\) animator",
        ),
    ],
    ids=["wrong-type", "duplicate-key", "missing-required", "unknown-value"],
)
def test_bad_seed_fails_clearly_and_loses_nothing(
    pg: Server,
    app_db: str,
    own_project: Path,
    seed: str,
    change: Callable[[list[list[str]]], object],
    message: str,
) -> None:
    header, data = read_csv(own_project / "seeds" / seed)
    change(data)
    write_csv(own_project / "seeds" / seed, header, data)
    with pg.connect(app_db, autocommit=True) as conn:
        add_user_activity(conn)
        before = {
            t: snapshot_of(conn, t, "1") for t in ("anime", "genres", "anime_studios", "ratings")
        }
        env = pg.env(app_db)
        seeded = pg_harness.run_dbt(own_project, env, "seed", check=False)
        ran = (
            pg_harness.run_dbt(own_project, env, "run", check=False)
            if seeded.returncode == 0
            else seeded
        )
        assert ran.returncode != 0
        assert re.search(message, ran.stdout, re.DOTALL), ran.stdout[-3000:]
        after = {
            t: snapshot_of(conn, t, "1") for t in ("anime", "genres", "anime_studios", "ratings")
        }
        assert after == before


def test_roles_have_least_privilege(pg: Server, app_db: str) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("set role animedb_generator")
        add_user_activity(conn)
        conn.execute("delete from app.ratings")  # its own data, tombstoned by the definer's trigger
        for statement in [
            "update app.anime set title = 'x'",
            "insert into app.genres (mal_id, name, kind) values (999, 'x', 'genre')",
            "delete from app.anime_genres",
            "update etl.watermarks set max_id = 1",
            "select * from etl.watermarks",
            "insert into etl.tombstones (table_name, key_value) values ('app.users', 1)",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("reset role")
        assert conn.execute("select count(*) from etl.tombstones").fetchone() == (2,)

        conn.execute("set role animedb_exporter")
        conn.execute("select count(*) from app.ratings, etl.tombstones")
        conn.execute("update etl.watermarks set rows_exported = rows_exported")
        conn.execute("select * from etl.oldest_open_transaction()")
        assert conn.execute(
            "select pg_has_role('animedb_exporter', 'pg_read_all_stats', 'usage')"
        ).fetchone() == (False,)
        for statement in [
            "insert into app.users (username, email, display_name) values ('x', 'x@y', 'x')",
            "delete from etl.tombstones",
            "update app.anime set title = 'x'",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_docs_generate(pg: Server, built_template: str, dbt_project: Path, tmp_path: Path) -> None:
    pg.create_database("animedb_docs", template=built_template)
    pg_harness.run_dbt(dbt_project, pg.env("animedb_docs"), "docs", "generate")
    catalog = (dbt_project / "target" / "catalog.json").read_text()
    assert '"app"' in catalog and "modified_date" in catalog


def test_build_on_the_embedded_server(tmp_path: Path, dbt_project: Path) -> None:
    """No PG* variable set: `animedb db env` starts the embedded server, and dbt builds into it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["ANIMEDB_HOME"] = str(tmp_path / "home")
    animedb = shutil.which("animedb", path=str(pg_harness.VENV_BIN))
    assert animedb
    try:
        exports = subprocess.run(
            [animedb, "db", "env"], env=env, capture_output=True, text=True, check=True
        ).stdout
        for line in exports.splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value.strip("'")
        assert env["PGDATABASE"] == "animedb"
        pg_harness.run_dbt(dbt_project, env, "build")
        with psycopg.connect(db.from_environment(env).conninfo()) as conn:
            version = conn.execute("show server_version_num").fetchone()
            assert version is not None and int(str(version[0])) >= 160000
            assert conn.execute("select count(*) from app.anime").fetchone() == (5,)
    finally:
        subprocess.run([animedb, "db", "stop"], env=env, capture_output=True, check=False)
