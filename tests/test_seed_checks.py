"""No silent loss on the way in: `animedb db dbt` refuses malformed seeds in one line before the
database changes, and a build that would delist too much of the catalog stops before app.anime."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from animedb import REPO, seeds
from animedb import dbt as dbt_runner
from tests import pg_harness
from tests.pg_harness import Server

Fingerprint = dict[str, tuple[int, str]]


def animedb_dbt(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`animedb db dbt ARGS --project-dir PROJECT`, as a user runs it."""
    return subprocess.run(
        [str(pg_harness.VENV_BIN / "animedb"), "db", "dbt", *args, "--project-dir", str(project)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def fingerprint(pg: Server, dbname: str, schemas: tuple[str, ...] = ("raw", "app")) -> Fingerprint:
    """Row count and checksum of every table of the schemas."""
    with pg.connect(dbname, autocommit=True) as conn:
        tables = conn.execute(
            "select schemaname || '.' || tablename from pg_tables where schemaname = any(%s)"
            " order by 1",
            (list(schemas),),
        ).fetchall()
        result: Fingerprint = {}
        for (table,) in tables:
            row = conn.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))"
                f" from {table} as t"
            ).fetchone()
            assert row is not None
            result[table] = (int(row[0]), str(row[1]))
        return result


Change = Callable[[list[bytes]], None]


def edit_lines(path: Path, change: Change) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    change(lines)
    path.write_bytes(b"".join(lines))


def set_line(number: int, text: bytes) -> Change:
    def change(lines: list[bytes]) -> None:
        lines[number - 1] = text

    return change


def replace_in_line(number: int, old: bytes, new: bytes) -> Change:
    return lambda lines: set_line(number, lines[number - 1].replace(old, new, 1))(lines)


def append_copy_of_line(number: int) -> Change:
    return lambda lines: lines.append(lines[number - 1])


@pytest.mark.parametrize(
    ("seed", "change", "message"),
    [
        (
            "mal_anime.csv",
            set_line(3, b"6,Trigun,Trigun\n"),
            r"seeds/mal_anime\.csv line 3: 3 cells, the header has 20: dbt would load the 17 "
            r"missing ones as NULL",
        ),
        (
            "mal_genres.csv",
            set_line(2, b"1,Action,genre,extra\n"),
            r"seeds/mal_genres\.csv line 2: 4 cells, the header has 3: a cell holding a comma "
            r"must be quoted",
        ),
        (
            "mal_anime.csv",
            replace_in_line(4, b"Naruto", b"Nar\xfcto"),  # Latin-1, not UTF-8
            r"seeds/mal_anime\.csv line 4: not UTF-8 \(byte 0xfc\): save the file as UTF-8",
        ),
        (
            "mal_anime_genres.csv",
            append_copy_of_line(4),
            r"seeds/mal_anime_genres\.csv line 15: key \(anime_id, genre_id\) = \(6, 1\) repeats "
            r"line 4: each key must appear once",
        ),
    ],
    ids=["short-row", "long-row", "not-utf8", "repeated-key"],
)
def test_bad_seed_is_one_line_and_changes_nothing(
    pg: Server,
    app_db: str,
    own_project: Path,
    seed: str,
    change: Change,
    message: str,
) -> None:
    edit_lines(own_project / "seeds" / seed, change)
    before = fingerprint(pg, app_db)
    for command in ("build", "seed"):
        result = animedb_dbt(own_project, pg.env(app_db), command)
        assert result.returncode != 0
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stdout == ""  # dbt never started
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert re.match(f"Error: {message}", lines[0]), lines[0]
    assert fingerprint(pg, app_db) == before


def drop_anime(project: Path, mal_ids: set[bytes]) -> None:
    def change(lines: list[bytes]) -> None:
        lines[1:] = [line for line in lines[1:] if line.split(b",")[0] not in mal_ids]

    edit_lines(project / "seeds" / "mal_anime.csv", change)


def listing(pg: Server, dbname: str) -> list[tuple[int, int, bool]]:
    with pg.connect(dbname) as conn:
        return [
            (int(mal_id), int(anime_id), bool(listed))
            for mal_id, anime_id, listed in conn.execute(
                "select mal_id, anime_id, is_listed from app.anime order by mal_id"
            ).fetchall()
        ]


def test_mass_delisting_is_refused_before_app_anime_changes(
    pg: Server, app_db: str, own_project: Path
) -> None:
    drop_anime(own_project, {b"1", b"6"})  # 2 of the 5 listed anime: more than a quarter
    before = fingerprint(pg, app_db, ("app",))
    result = animedb_dbt(own_project, pg.env(app_db), "build", "--no-use-colors")
    assert result.returncode != 0
    refusals = [line for line in result.stdout.splitlines() if "would delist" in line]
    assert len(refusals) == 1, result.stdout[-3000:]
    assert refusals[0].strip() == (
        "app.anime: this build would delist 2 of its 5 listed rows (more than a quarter), as a "
        "crawl that lost pages would; check the seeds, or if the delisting is meant, allow it "
        "with --vars '{allow_mass_delisting: true}'"
    )
    after = fingerprint(pg, app_db, ("app",))
    assert after["app.anime"] == before["app.anime"]


def test_mass_delisting_goes_through_when_allowed(
    pg: Server, app_db: str, own_project: Path
) -> None:
    before = listing(pg, app_db)
    drop_anime(own_project, {b"1", b"6"})
    result = animedb_dbt(
        own_project, pg.env(app_db), "build", "--vars", "{allow_mass_delisting: true}"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    after = listing(pg, app_db)
    assert [(m, i) for m, i, _ in after] == [(m, i) for m, i, _ in before]  # ids kept
    assert [m for m, _, listed in after if not listed] == [1, 6]


def test_a_quarter_is_not_refused(pg: Server, app_db: str, own_project: Path) -> None:
    drop_anime(own_project, {b"1"})  # 1 of 5
    result = animedb_dbt(own_project, pg.env(app_db), "build")
    assert result.returncode == 0, result.stdout[-3000:]
    assert [m for m, _, listed in listing(pg, app_db) if not listed] == [1]


# The checker itself, without a database.


def test_the_committed_seeds_pass() -> None:
    checked = seeds.check_project(REPO)
    assert len(checked) == 12 and all(c.seed.key for c in checked)


def test_the_declared_rules_are_the_crawlers() -> None:
    """The crawler merges rows by its items' keys and keeps only rows with their required values
    and known codes: the rules the seeds declare (config.meta in seeds/_seeds.yml), which the
    seed checker and assert_seed enforce, must be the same."""
    from scrapy_crawler.items import ITEM_CLASSES

    declared = {name: key for name, (key, _) in seeds.declared_keys(REPO).items()}
    assert declared == {cls.seed(): cls.key for cls in ITEM_CLASSES}

    properties = yaml.safe_load((REPO / "seeds" / "_seeds.yml").read_text())
    metas = {seed["name"]: seed["config"]["meta"] for seed in properties["seeds"]}
    declared_rules = {
        name: (
            set(meta.get("required", [])),
            {column: tuple(values) for column, values in meta.get("accepted", {}).items()},
        )
        for name, meta in metas.items()
    }
    item_rules = {
        cls.seed(): (
            {name for name, rule in cls.rules().items() if rule.required},
            {name: rule.choices for name, rule in cls.rules().items() if rule.choices},
        )
        for cls in ITEM_CLASSES
    }
    assert declared_rules == item_rules


def test_a_quoted_cell_may_span_lines_and_rows_are_named_by_their_first_line() -> None:
    data = b'\xef\xbb\xbfid,name\n1,"two\nlines"\n2,b\n1,c\n'
    found, rows = seeds.problems(data, ("id",), "seeds/_seeds.yml")
    assert rows == 3
    assert found == [
        seeds.Problem(
            5,
            "key (id) = (1) repeats line 2: each key must appear once; fix the file or "
            "re-run the crawler",
        )
    ]


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"id,name\n1,a\n\n2,b\n", 3, "a blank line (0 cells, the header has 2): delete it"),
        (b"id,id\n1,a\n", 1, "column id appears twice in the header"),
        (b"code,name\n1,a\n", 1, "the header has no column id, which the key declared in x.yml"),
        (b"", 1, "the file is empty"),
        (b"id,name\n1,a\n2," + b"x" * 200_000 + b"\n", 3, "not readable as CSV (field larger"),
    ],
    ids=["blank-line", "repeated-column", "key-not-in-header", "empty", "huge-cell"],
)
def test_problems(data: bytes, line: int, problem: str) -> None:
    found, _ = seeds.problems(data, ("id",), "x.yml")
    assert found[0].line == line and found[0].text.startswith(problem)


def test_every_problem_of_a_file_is_counted_in_its_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mal_x.csv"
    path.write_bytes(b"id,name\n1\n2\n3,c\n")
    with pytest.raises(
        seeds.SeedError,
        match=r"^x/mal_x\.csv line 2: 1 cell, the header has 2.*\(1 more in this file\)$",
    ):
        seeds.check_file(seeds.SeedFile(path, "x/mal_x.csv", ("id",), "x.yml"))


def test_which_commands_check_seeds_and_where_the_project_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert dbt_runner.loads_seeds(["build", "--select", "app"])
    assert dbt_runner.loads_seeds(["--debug", "seed"])
    assert not dbt_runner.loads_seeds(["run"])
    assert not dbt_runner.loads_seeds(["build", "--help"])
    monkeypatch.delenv(dbt_runner.PROJECT_DIR_VARIABLE, raising=False)
    assert dbt_runner.split_project_dir(["build"]) == (dbt_runner.PROJECT_DIR, ["build"])
    assert dbt_runner.split_project_dir(["build", "--project-dir", str(tmp_path), "-q"]) == (
        tmp_path.resolve(),
        ["build", "-q"],
    )
    monkeypatch.setenv(dbt_runner.PROJECT_DIR_VARIABLE, str(tmp_path))
    assert dbt_runner.split_project_dir(["seed"]) == (tmp_path.resolve(), ["seed"])
