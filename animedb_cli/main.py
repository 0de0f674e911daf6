"""The `animedb` console script: one click group whose subcommands are the tools, in the order the
data flows (crawl -> db -> generate -> export), then the demo; the database's own commands are
under `animedb db`."""

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
ORDER = ("crawl", "db", "generate", "export", "demo")
# the database's plumbing lived at the top before `animedb db`: (old name, the command there)
MOVED = (
    ("env", database.env),
    ("start", database.start),
    ("stop", database.stop),
    ("dbt", database.dbt),
    ("check-seeds", database.check_seeds),
)


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
    .animedb/ (`animedb db env|start|stop`). `python -m generators` and `python -m exporter`
    are `animedb generate` and `animedb export`.

    Example: animedb demo
    """


def moved(name: str, command: click.Command) -> click.Command:
    """The old top-level spelling of a command now under `animedb db`: the same command, hidden
    from the list, saying where it moved (on stderr, so `eval "$(animedb env)"` still works)."""

    def callback(*args: object, **kwargs: object) -> object:
        click.echo(
            f"note: `animedb {name}` is now `animedb db {name}`; the old spelling goes in a "
            "later release",
            err=True,
        )
        assert command.callback is not None
        return command.callback(*args, **kwargs)

    return click.Command(
        name,
        params=command.params,
        callback=callback,
        help=f"Moved to `animedb db {name}`; this spelling still works for now.\n\n"
        f"Example: animedb db {name} --help",
        hidden=True,
        context_settings=command.context_settings,
    )


main.add_command(crawl)
main.add_command(database.database)
for old_name, command in MOVED:
    main.add_command(moved(old_name, command))
