"""`animedb db ...`: build the database with dbt (animedb.dbt), and start, locate and stop the
database every tool talks to (animedb.db)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from animedb import cli as conventions
from animedb import db, seeds
from animedb import dbt as dbt_runner

# dbt's own flags go to dbt untouched, whatever they are
PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.command()
def env() -> None:
    """Print shell exports that point libpq tools at the database.

    psql, dbt or any libpq client then talks to it. With no PG* variable set, the embedded
    server is started first.

    Example: eval "$(animedb db env)" && psql -c 'select count(*) from app.anime'
    """
    try:
        settings = db.resolve()
    except db.DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(db.shell_exports(settings))


@click.command()
def start() -> None:
    """Start the embedded PostgreSQL under .animedb/.

    Nothing to do when it runs already.

    Example: animedb db start
    """
    try:
        settings = db.embedded_settings()
    except db.DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"running: {settings.describe()}")


@click.command()
def stop() -> None:
    """Stop the embedded PostgreSQL (its data stays in .animedb/).

    Example: animedb db stop
    """
    if db.stop_embedded():
        click.echo(f"stopped the embedded PostgreSQL in {db.project_home()}")
    else:
        click.echo("the embedded PostgreSQL was not running")


def run_dbt(args: Sequence[str]) -> None:
    """`dbt ARGS` through animedb.dbt, exiting with dbt's status; known failures as one line."""
    try:
        result = dbt_runner.run(args)
    except (db.DatabaseUnavailable, seeds.SeedError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(result.returncode)


@click.command(context_settings=PASSTHROUGH)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Run any dbt command in the project against the database.

    The database is the embedded one unless PG* variables are set; the profile is
    profiles.yml.example's. `build` and `seed` first check every seed whole (UTF-8, a full row
    on every line, no repeated key) and stop at the first bad line. `--project-dir DIR` (or
    $DBT_PROJECT_DIR) runs another copy of the project.

    Example: animedb db dbt build --select app
    """
    run_dbt(dbt_args or ("--help",))


@click.command("check-seeds")
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar=dbt_runner.PROJECT_DIR_VARIABLE,
    help="The dbt project whose seeds to check (default: this repository).",
)
@conventions.quiet_option("Print nothing but errors: the exit status says it all.")
@conventions.json_option("Print the files checked and their rows as JSON.")
def check_seeds(project_dir: Path | None, quiet: bool, as_json: bool) -> None:
    """Check the seeds whole, without a database.

    The checks `animedb db build` makes before loading them: UTF-8, as many cells on every row as
    in the header, no key (config.meta.key) repeated.

    Example: animedb db check-seeds
    """
    try:
        checked = seeds.check_project(project_dir or dbt_runner.PROJECT_DIR)
    except seeds.SeedError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = sum(c.rows for c in checked)
    if as_json:
        conventions.echo_json({"files": len(checked), "rows": rows})
    elif not quiet:
        click.echo(f"{len(checked)} seed files, {rows:,} rows: well-formed, no key repeated")


@click.group("db", cls=conventions.Group)
def database() -> None:
    """Build the database with dbt, and start, locate or stop it.

    `build` is what a new crawl or a fresh machine needs (seeds, models, snapshots, roles,
    tests); `seed`, `run` and `test` are its parts, and `dbt` runs any dbt command; further
    arguments go to dbt as they are. `env` prints exports for psql and libpq tools, `start` and
    `stop` run the embedded server, `check-seeds` checks the seeds without a database.

    Example: animedb db build
    """


# (dbt command, what it does) for `animedb db COMMAND`
DB_STEPS = (
    ("build", "Build everything: seeds, models, snapshots, roles and tests"),
    ("seed", "Check the seeds whole, then load them into schema raw"),
    ("run", "Build the models (staging views, the application tables in app)"),
    ("test", "Run the tests of the seeds, models and business rules"),
)


def _db_step(name: str, does: str) -> click.Command:
    @click.command(
        name,
        context_settings=PASSTHROUGH,
        help=f"{does}.\n\n`dbt {name}` against the database; any further argument goes to "
        f"dbt as it is.\n\nExample: animedb db {name} --select app",
    )
    @click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
    def step(dbt_args: tuple[str, ...]) -> None:
        run_dbt((name, *dbt_args))

    return step


for _name, _does in DB_STEPS:
    database.add_command(_db_step(_name, _does))

# the database's plumbing, beside dbt's steps
for _command in (env, start, stop, dbt, check_seeds):
    database.add_command(_command)
