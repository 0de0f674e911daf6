"""Generators of user activity (users, wishlist, ratings) that keep the catalog alive.

`run_tick` is the plain function behind the CLI (`python -m generators`), `make demo` and the
Lambda handler; `generators.schedule.run_every` is the local scheduler loop.
"""

from generators.config import CatalogMissing, ConfigError, GeneratorError, TickConfig
from generators.tick import TickFailed, TickSummary, check_ready, run_tick

# The scheduler (generators.schedule, croniter under it) is imported where it is used: the
# Lambda function, which EventBridge schedules, loads this package without it.
__all__ = [
    "CatalogMissing",
    "ConfigError",
    "GeneratorError",
    "TickConfig",
    "TickFailed",
    "TickSummary",
    "check_ready",
    "run_tick",
]
