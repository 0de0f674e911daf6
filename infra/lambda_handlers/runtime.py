"""What both handlers share: run the work against the function's database, log one line of
summary, and turn any failure into RunFailed with a one-line message holding no secret (the
runtime logs it, EventBridge Scheduler's invocation counts as failed and Lambda retries it, then
sends it to the dead-letter queue)."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from animedb import db
from animedb.errors import first_line
from lambda_handlers import rds

log = logging.getLogger(__name__)

Work = Callable[[rds.RdsSettings], dict[str, Any]]


class RunFailed(RuntimeError):
    """A scheduled run did not complete; the message says why, with passwords masked."""


def fail(message: str) -> RunFailed:
    """A failure found before any work started (a bad event): logged, then raised by the caller."""
    log.error(message)
    return RunFailed(message)


def event_fields(event: object, allowed: frozenset[str], what: str) -> dict[str, Any]:
    """The event as a mapping of known keys (a schedule's Input, a console test event): a typo
    is an error, never a silent default."""
    if event is None:
        return {}
    if not isinstance(event, Mapping):
        raise fail(f"{what}: the event must be a JSON object, not {type(event).__name__}")
    unknown = sorted(str(key) for key in event if key not in allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise fail(f"{what}: unknown event field(s) {', '.join(unknown)} (known: {known})")
    return {str(key): value for key, value in event.items()}


def invoke(
    what: str, role: str, work: Work, expected: tuple[type[BaseException], ...]
) -> dict[str, Any]:
    """Run `work` with the function's database settings, logged in as the tool role `role`.
    `expected` errors already carry a one-line message; anything else is logged with its
    traceback, masked, before it is reported."""
    started = time.monotonic()
    known: tuple[type[BaseException], ...] = (
        *expected,
        db.DatabaseUnavailable,
        rds.ConfigurationError,
    )
    try:
        result = work(rds.settings(role))
    except known as exc:
        message = rds.redact(f"{what} failed: {exc}")
        log.error(message)
        raise RunFailed(message) from None
    except Exception as exc:
        log.error(
            "%s failed unexpectedly:\n%s",
            what,
            rds.redact("".join(traceback.format_exception(exc))),
        )
        said = f": {first_line(exc)}" if str(exc).strip() else ""
        raise RunFailed(rds.redact(f"{what} failed: {type(exc).__name__}{said}")) from None
    result = {**result, "seconds_in_handler": round(time.monotonic() - started, 3)}
    log.info("%s done: %s", what, json.dumps(result, default=str, sort_keys=True))
    return result
