"""DuckDB SQL text from names and values the exporter did not choose: a lake's field names and
key-column property (anyone who can edit the catalog chooses those) and the file locations its
manifests list. DuckDB runs every statement of one execute, so such a name pasted as it is can
add a statement of its own (COPY ... TO writes a file); here names are checked and quoted, and
values quoted as literals, in one place.

A lake's names are refused unless plain: the exporter names its fields after PostgreSQL columns
and its own (_run_id, ...), and these are all letters, digits and underscores."""

from __future__ import annotations

import re

from exporter.errors import ExportError

# the characters of PostgreSQL's unquoted names (either case), at most its 63
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_SHOWN = 80  # characters of an offending value an error line shows


def shown(value: str) -> str:
    """A value for an error line: repr (no control character printed), cut to _SHOWN."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _no_nul(value: str) -> str:
    if "\x00" in value:  # DuckDB's parser stops at a NUL: the statement would be cut short
        raise ExportError(
            f"{shown(value)} holds a NUL character, which DuckDB SQL cannot carry: a name or "
            "location in the lake's metadata was changed by another tool; export to a new target"
        )
    return value


def identifier(name: str) -> str:
    """DuckDB's quoted identifier of any name: in double quotes, each one in it doubled."""
    return '"' + _no_nul(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """DuckDB's string literal of any value: in single quotes, each one in it doubled
    (DuckDB's plain strings take no backslash escapes)."""
    return "'" + _no_nul(value).replace("'", "''") + "'"


def lake_name(table: str | None, what: str, name: str) -> str:
    """`name`, read from lake table `table`'s metadata as `what` (a field, a property), if it
    is a plain name; otherwise one line saying so, which shows it escaped."""
    if not PLAIN_NAME.fullmatch(name):
        owner = f"table {table}" if table else "a lake table"
        raise ExportError(
            f"{owner} has {what} {shown(name)}, which is not a plain column name (letters, digits, "
            "_ and $): the table's metadata was changed by another tool; change it back, or "
            "export to a new target"
        )
    return name
