"""What every command line of the project shares (`animedb`, `python -m generators`,
`python -m exporter`): one error convention, `--version`, `--json`, `--quiet` and range types.

The commands themselves live with their tools and in `animedb_cli` (the `animedb` command,
above the tools); this module imports none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import click

DISTRIBUTION = "animedatabase"  # pyproject.toml's [project] name: where --version is read

F = TypeVar("F", bound=Callable[..., Any])


class UsageLine(click.ClickException):
    """A usage error (unknown flag, bad value, missing option) as the one line every other
    user error is: `Error: No such option '--bogus' (see `animedb generate tick --help`)`,
    exit 2, instead of click's usage block."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        where = error.ctx.command_path if error.ctx is not None else None
        message = error.format_message().rstrip(".")
        super().__init__(f"{message} (see `{where} --help`)" if where else message)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


@contextmanager
def _usage_as_one_line() -> Iterator[None]:
    try:
        yield
    except click.UsageError as exc:
        raise UsageLine(exc) from exc


class Group(click.Group):
    """A click group whose every user error is one `Error: ...` line on stderr and a non-zero
    exit (2 for usage errors, 1 for the rest), never a traceback: click.ClickException for a
    failure, click's own exceptions for bad flags, which this group folds into one line.
    `--help` lists the subcommands in the order they were added, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _usage_as_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _usage_as_one_line():
            return super().invoke(ctx)


def version_option() -> Callable[[F], F]:
    """`--version`: the installed distribution's version (importlib.metadata)."""
    return click.version_option(package_name=DISTRIBUTION)


def json_option(help: str = "Print the summary as JSON.") -> Callable[[F], F]:
    """`--json` (the `as_json` parameter): the result as JSON on stdout, and nothing else there."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(help: str = "No progress, no table: errors only.") -> Callable[[F], F]:
    """`--quiet`: nothing but errors (and the JSON, when --json asks for it)."""
    return click.option("--quiet", is_flag=True, help=help)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


class IntRange(click.IntRange):
    """click.IntRange (closed bounds) whose refusal reads like the project's other errors:
    `--count must be at least 1 (got 0)`, `--adds must be between 0 and 1,000,000 (got -1)`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number: int = click.INT.convert(value, param, ctx)
        low, high = self.min, self.max
        if (low is not None and number < low) or (high is not None and number > high):
            raise OutOfRange(f"{self._bounds()} (got {number:,})", ctx=ctx, param=param)
        return number

    def _bounds(self) -> str:
        if self.min is not None and self.max is not None:
            return f"must be between {self.min:,} and {self.max:,}"
        if self.min is not None:
            return f"must be at least {self.min:,}"
        return f"must be at most {self.max:,}"


class OutOfRange(click.BadParameter):
    """A value outside its range, said with the flag first: `--count must be at least 1 (got 0)`."""

    def format_message(self) -> str:
        names: Sequence[str] = getattr(self.param, "opts", ()) or ()
        return f"{max(names, key=len) if names else 'the value'} {self.message}"
