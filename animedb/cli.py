"""`animedb`: start, locate and stop the database every tool of the project talks to."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from animedb import db, seeds
from animedb import dbt as dbt_runner


@click.group()
def main() -> None:
    """The project's database: libpq's PG* variables when set, else an embedded PostgreSQL."""


@main.command()
def env() -> None:
    """Print shell exports that point psql, dbt and any libpq tool at the database,
    starting the embedded server first if no PG* variable is set.

    Example: eval "$(animedb env)" && psql -c 'select count(*) from app.anime'
    """
    try:
        settings = db.resolve()
    except db.DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(db.shell_exports(settings))


@main.command()
def start() -> None:
    """Start the embedded PostgreSQL under .animedb/ (nothing to do when it runs already).

    Example: animedb start
    """
    try:
        settings = db.embedded_settings()
    except db.DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"running: {settings.describe()}")


@main.command()
def stop() -> None:
    """Stop the embedded PostgreSQL; its data stays in .animedb/ for the next start.

    Example: animedb stop
    """
    if db.stop_embedded():
        click.echo(f"stopped the embedded PostgreSQL in {db.project_home()}")
    else:
        click.echo("the embedded PostgreSQL was not running")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Run dbt in the project against the database (embedded unless PG* variables are set),
    with the profile of profiles.yml.example. `build` and `seed` first check every seed whole
    (UTF-8, a full row on every line, no repeated key) and stop at the first bad line.
    `--project-dir DIR` (or $DBT_PROJECT_DIR) runs another copy of the project.

    Example: animedb dbt build --select app
    """
    try:
        result = dbt_runner.run(dbt_args or ("--help",))
    except (db.DatabaseUnavailable, seeds.SeedError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(result.returncode)


@main.command("check-seeds")
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar=dbt_runner.PROJECT_DIR_VARIABLE,
    help="The dbt project whose seeds to check (default: this repository).",
)
def check_seeds(project_dir: Path | None) -> None:
    """Check the seeds as `animedb dbt build` does before loading them, touching no database:
    UTF-8, as many cells on every row as in the header, no key (config.meta.key) repeated.

    Example: animedb check-seeds
    """
    try:
        checked = seeds.check_project(project_dir or dbt_runner.PROJECT_DIR)
    except seeds.SeedError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = sum(c.rows for c in checked)
    click.echo(f"{len(checked)} seed files, {rows:,} rows: well-formed, no key repeated")


if __name__ == "__main__":
    main()
