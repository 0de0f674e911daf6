"""Generators of user activity (users, wishlist, ratings) that keep the catalog alive.

`run_tick` is the plain function behind the CLI (`python -m generators`), `make demo` and the
Lambda handler; `run_every` is the local scheduler loop.
"""

from generators.config import CatalogMissing, ConfigError, GeneratorError, TickConfig
from generators.schedule import RunSummary, parse_schedule, run_every
from generators.tick import TickFailed, TickSummary, check_ready, run_tick

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
