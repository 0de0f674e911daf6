"""What one tick does: the sizes and mix of a batch of activity, checked before any work starts,
and the errors a user can fix (one line each)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

# A tick is one transaction: past this it holds its locks for minutes and the undo is as large.
MAX_COUNT = 1_000_000
MAX_RETRIES = 20


class GeneratorError(Exception):
    """A problem the user can fix; str() says what and how, one line per problem."""


class ConfigError(GeneratorError):
    """A setting has a value the generator cannot use."""


class CatalogMissing(GeneratorError):
    """The database has no anime catalog to generate activity about."""


@dataclass(frozen=True)
class TickConfig:
    """The sizes of one tick: how many of each kind of activity it plans. Counts are upper bounds:
    a tick does fewer when the data offers fewer candidates (e.g. nothing left to rate)."""

    new_users: int = 5
    """Users who sign up."""
    active_users: int = 40
    """Existing users drawn at random to act in this tick (profile edits, list changes, ratings)."""
    profile_edits: int = 3
    """Active users who edit their profile (bio, display name, country or favorite genre)."""
    wishlist_adds: int = 60
    """Anime added to the lists of active and new users, by popularity and the user's taste."""
    progressions: int = 40
    """List entries that move on: plan_to_watch -> watching -> completed, on_hold or dropped."""
    ratings: int = 25
    """New ratings of entries the user is watching or has completed."""
    rerates: int = 5
    """Ratings whose score the user changes."""
    removals: int = 3
    """List entries removed (with their rating, if any)."""
    taste: float = 0.6
    """Share of anime picks drawn from the user's favorite genre (0: popularity alone)."""
    seed: int | None = None
    """Seeds the tick's random choices: the same seed on the same database gives the same rows."""
    max_retries: int = 5
    """Times a tick is retried whole after a deadlock, serialization failure or key race."""

    def __post_init__(self) -> None:
        problems = [
            problem
            for field in dataclasses.fields(self)
            if (problem := _check(field.name, getattr(self, field.name))) is not None
        ]
        if problems:
            raise ConfigError("\n".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> TickConfig:
        """A config from plain data (a Lambda event, a JSON file): unknown keys are errors, so a
        typo cannot silently fall back to a default."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                "\n".join(
                    f"unknown setting {name!r} (known: {', '.join(sorted(known))})"
                    for name in unknown
                )
            )
        return cls(**values)  # type: ignore[arg-type]  # each value is checked in __post_init__

    def with_seed(self, seed: int) -> TickConfig:
        return dataclasses.replace(self, seed=seed)

    def for_tick(self, index: int) -> TickConfig:
        """The config of the index-th tick (from 0) of a run. A run seeded s gives its ticks the
        seeds s, s + 1, ..., so that `tick --seed N` replays any one of them; an unseeded run
        leaves each tick to draw its own."""
        return self if self.seed is None else self.with_seed((self.seed + index) % 2**63)


def _check(name: str, value: object) -> str | None:
    if name == "taste":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"taste must be a number between 0 and 1 (got {value!r})"
        if not 0.0 <= float(value) <= 1.0:
            return f"taste must be between 0 and 1 (got {value})"
        return None
    if name == "seed" and value is None:
        return None
    limit = {"seed": 2**63 - 1, "max_retries": MAX_RETRIES}.get(name, MAX_COUNT)
    # bool is an int to Python, but `"ratings": true` in an event is a mistake, not a count
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number (got {value!r})"
    if not 0 <= value <= limit:
        return f"{name} must be between 0 and {limit:,} (got {value:,})"
    return None
