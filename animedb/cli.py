"""`animedb`: start, locate and stop the database every tool of the project talks to."""

from __future__ import annotations

import sys

import click

from animedb import db
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
    with the profile of profiles.yml.example.

    Example: animedb dbt build --select app
    """
    try:
        result = dbt_runner.run(dbt_args or ("--help",))
    except (db.DatabaseUnavailable, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
