"""The one error type of the exporter: its message is a single line saying what is wrong and what
to do; the CLI prints it and exits non-zero, the Lambda handler reports it."""


def first_line(exc: BaseException) -> str:
    """What an exception says, in one line: its first (DuckDB, PostgreSQL and pyiceberg say
    more on the lines after), or its type when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ExportError(RuntimeError):
    """A run (or status, or verify) that cannot go on; nothing already stored is lost."""


class ExportBusy(ExportError):
    """Another exporter holds the lock: nothing is wrong, this run simply does not happen."""
