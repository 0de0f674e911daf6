"""The `animedb` console script: one click group whose subcommands are the tools, in the order the
data flows (crawl -> db -> generate -> export), the demo, and the database's own commands."""

from __future__ import annotations

import importlib

import click

from animedb import cli as conventions
from animedb_cli import database
from animedb_cli.crawl import crawl

# Commands imported when they are used (click's lazy-loading pattern): `animedb env` should not
# wait for pyiceberg, DuckDB and rich to load. Each is the tool's own click object, not a copy.
LAZY = {
    "generate": "generators.cli:main",
    "export": "exporter.cli:main",
    "demo": "animedb_cli.demo:demo",
}
ORDER = ("crawl", "db", "generate", "export", "demo", "env", "start", "stop", "dbt", "check-seeds")


class Commands(conventions.Group):
    """The top-level group: the tools' groups are loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands) | set(LAZY)
        return [n for n in ORDER if n in names] + sorted(names - set(ORDER))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY and cmd_name not in self.commands:
            module, _, name = LAZY[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), LAZY[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=Commands)
@conventions.version_option()
def main() -> None:
    """AnimeDataBase: crawl MyAnimeList into seeds, build PostgreSQL with dbt, keep it alive
    with generated activity, and export it to a lake of Iceberg tables.

    The database is libpq's PG* variables when any is set, else an embedded PostgreSQL under
    .animedb/. `python -m generators` and `python -m exporter` are `animedb generate` and
    `animedb export`.

    Example: animedb demo
    """


for command in (crawl, database.database, database.env, database.start, database.stop,
                database.dbt, database.check_seeds):  # fmt: skip
    main.add_command(command)
