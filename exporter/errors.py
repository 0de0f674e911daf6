"""The one error type of the exporter: its message is a single line saying what is wrong and what
to do; the CLI prints it and exits non-zero, the Lambda handler reports it."""

import contextlib
import errno
from collections.abc import Iterator

from animedb.errors import first_line

__all__ = ["ExportBusy", "ExportError", "first_line", "one_line"]


class ExportError(RuntimeError):
    """A run (or status, or verify) that cannot go on; nothing already stored is lost."""


class ExportBusy(ExportError):
    """Another exporter holds the lock: nothing is wrong, this run simply does not happen."""


# SQLSTATEs of a session that is gone: admin_shutdown (pg_terminate_backend, a restart),
# crash_shutdown, idle_session_timeout; class 08 is a connection exception, and psycopg gives
# none for a connection the client found closed
_CONNECTION_LOST = ("57P01", "57P02", "57P05")


@contextlib.contextmanager
def one_line(what: str) -> Iterator[None]:
    """Faults below the exporter, as one ExportError line each: the PostgreSQL session lost, a
    disk full or failing, the SQLite catalog's errors. `what` names the work (`the run`), for
    the message. Nothing is lost by any of them: a pending run is resumed by the next one."""
    import psycopg

    try:
        yield
    except ExportError:
        raise
    except psycopg.OperationalError as exc:
        state = exc.sqlstate
        if state is None or state.startswith("08") or state in _CONNECTION_LOST:
            raise ExportError(
                f"lost the connection to PostgreSQL during {what} ({first_line(exc)}): nothing "
                "is lost, a pending run is resumed by the next one; check the server, then run "
                "again"
            ) from exc
        raise ExportError(
            f"PostgreSQL stopped {what}: {first_line(exc)} (nothing is lost: run again)"
        ) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ExportError(
                f"no space left on the device{where} during {what}: free space, then run again "
                "(nothing is lost, a pending run is resumed)"
            ) from exc
        raise ExportError(
            f"{exc.strerror or first_line(exc)}{where} during {what}: fix it, then run again "
            "(nothing is lost, a pending run is resumed)"
        ) from exc
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        text = first_line(exc)
        if "disk is full" in text:
            raise ExportError(
                f"no space left on the device of the lake's SQLite catalog during {what}: free "
                "space, then run again (nothing is lost, a pending run is resumed)"
            ) from exc
        raise ExportError(f"the lake's SQL catalog failed during {what}: {text}") from exc
