"""What every tool says about an exception it reports: one line of it."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """What an exception says, in one line: its first (libpq, DuckDB and pyiceberg say more on
    the lines after), or its type when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
