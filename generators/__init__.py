"""Generators of user activity (users, wishlist, ratings) that keep the catalog alive.

`run_tick` is the plain function behind the CLI (`python -m generators`), `make demo` and the
Lambda handler; `run_every` is the local scheduler loop.
"""

from typing import TYPE_CHECKING, Any

from generators.config import CatalogMissing, ConfigError, GeneratorError, TickConfig
from generators.tick import TickFailed, TickSummary, check_ready, run_tick

if TYPE_CHECKING:
    from generators.schedule import RunSummary, parse_schedule, run_every

# The scheduler (and croniter under it) loads on first use: the Lambda function, which EventBridge
# schedules, imports the package without it and its layer does not carry croniter.
_SCHEDULE_NAMES = frozenset({"RunSummary", "parse_schedule", "run_every"})


def __getattr__(name: str) -> Any:
    if name in _SCHEDULE_NAMES:
        from generators import schedule

        return getattr(schedule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CatalogMissing",
    "ConfigError",
    "GeneratorError",
    "RunSummary",
    "TickConfig",
    "TickFailed",
    "TickSummary",
    "check_ready",
    "parse_schedule",
    "run_every",
    "run_tick",
]
