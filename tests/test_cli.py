"""The one command, `animedb`, and the tools' own entry points (`python -m generators`,
`python -m exporter`): one error convention, --version, help with an example everywhere, the
crawl passed through to Scrapy, the layers in the folders, and one rule for the default user."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import click
import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result

from animedb import REPO, db
from animedb import dbt as dbt_runner
from animedb.cli import DISTRIBUTION
from animedb_cli.main import main as animedb
from exporter.cli import main as exporter
from generators.cli import main as generators
from tests.crawler_helpers import LOCAL_PAGES, LOCAL_START_URLS, crawl_local_pages, same_files
from tests.pg_harness import free_port

TOOLS = ("generators", "exporter", "scrapy_crawler", "animedb_cli")


def invoke(command: click.Command, *args: str, prog: str = "animedb") -> Result:
    # bad flags are refused before any connection: no database is named here at all
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT=str(free_port()))
    return CliRunner(env=env).invoke(command, list(args), prog_name=prog)


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group under `group`, the group itself first."""
    yield path
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


ALL_COMMANDS = list(commands(animedb))


def test_the_tools_are_subcommands_of_animedb() -> None:
    context = click.Context(animedb)
    shown = [n for n in animedb.list_commands(context) if not animedb.commands[n].hidden]
    assert shown[:5] == ["crawl", "db", "generate", "export", "demo"]  # the data flow's order
    for name in ("env", "start", "stop", "dbt", "check-seeds"):
        assert ("db", name) in ALL_COMMANDS
    assert ("generate", "tick") in ALL_COMMANDS and ("export", "verify") in ALL_COMMANDS
    assert ("db", "build") in ALL_COMMANDS
    # the same click groups as `python -m generators` and `python -m exporter`, not copies
    assert animedb.get_command(context, "generate") is generators
    assert animedb.get_command(context, "export") is exporter


def test_the_database_commands_load_no_tool() -> None:
    """`animedb db env` and friends start without importing the tools (pyiceberg, DuckDB...)."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from animedb_cli.main import main\n"
        "assert CliRunner().invoke(main, ['db', 'stop', '--help']).exit_code == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'exporter', 'generators', 'pyiceberg', 'duckdb'}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "[]\n"


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(("animedb", *p)))
def test_every_help_has_an_example(path: tuple[str, ...]) -> None:
    result = invoke(animedb, *path, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: {' '.join(('animedb', *path))} " in result.output
    assert "\n  Example: " in result.output, result.output


@pytest.mark.parametrize(
    ("command", "prog"),
    [(animedb, "animedb"), (generators, "python -m generators"), (exporter, "python -m exporter")],
)
def test_version(command: click.Command, prog: str) -> None:
    result = invoke(command, "--version", prog=prog)
    assert result.exit_code == 0
    assert result.output == f"{prog}, version {version(DISTRIBUTION)}\n"


BAD_FLAGS = [
    (["dance"], r"No such command 'dance' (see `animedb --help`)"),
    (
        ["generate", "tick", "--bogus"],
        "No such option '--bogus' (see `animedb generate tick --help`)",
    ),
    (["generate", "tick", "--count", "0"], "--count must be at least 1 (got 0)"),
    (["generate", "tick", "--adds", "lots"], "Invalid value for '--adds': 'lots' is not a valid"),
    (["generate", "tick", "--adds", "-1"], "--adds must be between 0 and 1,000,000 (got -1)"),
    (
        ["generate", "tick", "--adds", "-1", "--taste", "2"],
        "--adds must be between 0 and 1,000,000 (got -1); --taste must be between 0 and 1",
    ),
    (["generate", "run", "--every", "1s", "--max-ticks", "0"], "--max-ticks must be at least 1"),
    (["generate", "run"], "Missing option '--every' (see `animedb generate run --help`)"),
    (["export", "run"], "Missing option '--target' (see `animedb export run --help`)"),
    (["export", "run", "--target", "x", "--settle", "-1"], "Invalid value for '--settle'"),
    (["export", "abandon", "soon"], "Invalid value for 'RUN_ID': 'soon' is not a valid integer"),
    (["export", "report", "--target", "s3://lake/x"], "give --output for an s3:// lake"),
    (["db", "bogus"], "No such command 'bogus' (see `animedb db --help`)"),
    (["db", "check-seeds", "--project-dir", "/nonexistent"], "'/nonexistent' does not exist"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_flags_are_one_clear_line(args: list[str], message: str) -> None:
    result = invoke(animedb, *args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]


def test_a_user_error_of_a_command_is_one_line_and_exit_1() -> None:
    result = invoke(animedb, "generate", "tick")  # nothing listens on that port
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot connect to PostgreSQL at 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("module", ["generators", "exporter"])
def test_python_m_is_the_same_command(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT=str(free_port()))
    run = subprocess.run(
        [sys.executable, "-m", module, "run"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("Error: Missing option '--") and run.stderr.count("\n") == 1
    assert f"(see `python -m {module} run --help`)" in run.stderr
    assert (
        subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, env=env
        ).stdout
        == f"python -m {module}, version {version(DISTRIBUTION)}\n"
    )


def test_the_console_script_is_animedb_cli() -> None:
    script = Path(sys.executable).parent / "animedb"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout == f"animedb, version {version(DISTRIBUTION)}\n"


def test_crawl_passes_its_arguments_to_scrapy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`animedb crawl ARGS` is `scrapy crawl myanimelist ARGS`, run from any folder: relative
    paths are the caller's, and the seeds are byte for byte those of Scrapy's own command."""
    expected = tmp_path / "expected"
    crawl_local_pages(expected)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SCRAPY_SETTINGS_MODULE", raising=False)
    result = CliRunner().invoke(
        animedb,
        ["crawl", "-a", f"replay={LOCAL_PAGES}", "-a", "out=seeds",
         "-a", "start_urls=" + ",".join(LOCAL_START_URLS), "--loglevel", "WARNING"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    same_files(expected, elsewhere / "seeds")


def test_crawl_exits_with_scrapys_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(animedb, ["crawl", "-a", "no_such_argument=1"])
    assert result.exit_code == 2  # scrapy crawl's exit for a bad argument
    assert not (tmp_path / "seeds").exists()


def _imports(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_shared_layer_imports_no_tool() -> None:
    """animedb/ is the bottom: connection, dbt runner, seed checks, CLI conventions."""
    for path in sorted((REPO / "animedb").rglob("*.py")):
        assert not _imports(path) & set(TOOLS), path


@pytest.mark.parametrize(
    "folder", ["generators", "exporter", "scrapy_crawler", "infra/lambda_handlers"]
)
def test_no_tool_imports_the_command_above_it(folder: str) -> None:
    """animedb_cli (the one command, the demo) composes the tools; none of them imports it."""
    for path in sorted((REPO / folder).rglob("*.py")):
        assert "animedb_cli" not in _imports(path), path


def test_the_lambda_function_ships_no_demo(tmp_path: Path) -> None:
    """The function package holds the packages the handlers import, and nothing that needs
    the tools the Lambda layers lack (the demo, the `animedb` command, Scrapy, dbt)."""
    import build_layers  # infra/, on pytest's pythonpath

    artifact = build_layers.build_function(tmp_path, None)
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
    assert not [n for n in names if n.startswith("animedb_cli/") or n.endswith("demo.py")]
    stage = tmp_path / "stage" / "function"
    for path in sorted(stage.rglob("*.py")):
        assert not _imports(path) & {"animedb_cli", "scrapy", "scrapy_crawler", "dbt"}, path


def _libpq_user(conninfo: str) -> str:
    """The user libpq settles on for a connection string (resolved before any network I/O)."""
    conn = psycopg.pq.PGconn.connect_start(conninfo.encode())
    try:
        return (conn.user or b"").decode()
    finally:
        conn.finish()


def test_one_default_user_for_the_tools_psql_and_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    """With PGHOST set and PGUSER not: libpq (so psql and the tools) logs in as the OS user;
    `animedb db dbt` and `animedb db env` hand dbt the same user, and so does a bare `dbt` reading
    profiles.yml.example."""
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.setenv("PGHOST", "/nonexistent-socket-folder")
    user = db.default_user()
    assert user and _libpq_user("dbname=animedb") == user

    settings = db.from_environment({"PGHOST": "/nonexistent-socket-folder"})
    assert _libpq_user(settings.conninfo()) == user  # the tools' connection string
    assert settings.environment()["PGUSER"] == user
    assert dbt_runner.environment(settings)["PGUSER"] == user  # what `animedb db dbt` gives dbt
    assert f"export PGUSER={user}" in db.shell_exports(settings).splitlines()

    # a bare `dbt` renders the profile with PGUSER unset; dbt-postgres hands the user to
    # psycopg2, which puts it in the connection string as user='' (as make_conninfo does),
    # and libpq replaces an empty user with its default
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ))
    profile = yaml.safe_load((REPO / "profiles.yml.example").read_text(encoding="utf-8"))
    dev = ProfileRenderer({}).render_data(profile)["animedb"]["outputs"]["dev"]
    assert dev["user"] == ""
    dsn = psycopg.conninfo.make_conninfo("", host=dev["host"], user="", dbname=dev["dbname"])
    assert "user=''" in dsn and _libpq_user(dsn) == user


def test_a_given_user_is_kept_and_the_embedded_one_is_postgres() -> None:
    settings = db.from_environment({"PGHOST": "db.example", "PGUSER": "admin"})
    assert settings.environment()["PGUSER"] == "admin"
    assert _libpq_user(settings.conninfo()) == "admin"
    # a tool still logs in as its own role, without the administrator's password
    tool = db.from_environment({"PGUSER": "admin", "PGPASSWORD": "pw"}).login(db.EXPORTER_ROLE)
    assert (tool.user, tool.password) == (db.EXPORTER_ROLE, "")
    assert db.EMBEDDED_USER == "postgres"


@pytest.mark.parametrize("name", ["env", "start", "stop", "dbt", "check-seeds"])
def test_the_old_database_spellings_still_work_and_say_where_they_moved(name: str) -> None:
    result = CliRunner().invoke(animedb, [name, "--help"])
    assert result.exit_code == 0 and f"animedb db {name}" in result.output


def test_an_old_spelling_is_the_same_command_with_one_note() -> None:
    moved = CliRunner().invoke(animedb, ["check-seeds", "--json"])
    now = CliRunner().invoke(animedb, ["db", "check-seeds", "--json"])
    assert moved.exit_code == now.exit_code == 0
    assert moved.stdout == now.stdout
    assert moved.stderr == (
        "note: `animedb check-seeds` is now `animedb db check-seeds`; the old spelling goes "
        "in a later release\n"
    )
