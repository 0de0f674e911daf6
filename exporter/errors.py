"""The one error type of the exporter: its message is a single line saying what is wrong and what
to do; the CLI prints it and exits non-zero, the Lambda handler reports it."""

from animedb.errors import first_line

__all__ = ["ExportBusy", "ExportError", "first_line"]


class ExportError(RuntimeError):
    """A run (or status, or verify) that cannot go on; nothing already stored is lost."""


class ExportBusy(ExportError):
    """Another exporter holds the lock: nothing is wrong, this run simply does not happen."""
