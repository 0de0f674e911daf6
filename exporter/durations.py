"""Durations as the exporter's settings spell them (`90`, `90s`, `30m`, `12h`, `7d`): the lake's
retention and orphan age, and the sessions' lock and statement timeouts."""

from __future__ import annotations

import datetime as dt
import re

from exporter.errors import ExportError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str) -> dt.timedelta:
    """`90`, `90s`, `30m`, `12h` or `7d`; anything else is one clear line."""
    match = _DURATION.match(text)
    if not match:
        raise ExportError(f"{what} {text!r} is not a duration: use e.g. 90s, 30m, 12h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ExportError(f"{what} {text!r} must be longer than zero")
    return dt.timedelta(seconds=seconds)
