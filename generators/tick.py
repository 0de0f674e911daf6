"""One tick: read, plan and write a batch of activity in one transaction, as the generator role,
retried whole after a deadlock, serialization failure or key race. `run_tick` is the plain
function the CLI, `make demo` and the Lambda handler all call."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from animedb import db
from animedb.errors import first_line
from generators import state
from generators.config import GeneratorError, TickConfig
from generators.plan import plan_tick
from generators.state import Conn
from generators.write import write_plan

APPLICATION_NAME = "animedb-generator"
# Steps reported to `on_phase`, in order (a progress bar's ticks).
PHASES = ("read", "plan", "users", "wishlist", "ratings", "commit")
# What a retry of the whole tick can cure: another transaction won a race this one lost.
RETRYABLE = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.UniqueViolation,
    psycopg.errors.LockNotAvailable,
)
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
# A foreign lock (a dbt run altering a table) should cost a retry, not hang a scheduled tick.
LOCK_TIMEOUT = "10s"
# Test hook: seconds to sleep after the writes, before COMMIT, so that a test can kill the
# process in the middle of a tick. Never set in production.
HOLD_BEFORE_COMMIT_ENV = "ANIMEDB_GENERATOR_HOLD_BEFORE_COMMIT"


class TickFailed(GeneratorError):
    """A tick kept losing races after every retry; nothing of it was written."""


@dataclass(frozen=True)
class TickSummary:
    """What one committed tick wrote."""

    seed: int
    counts: dict[str, int]
    """Rows written by kind (generators.write.KINDS)."""
    progress_kinds: dict[str, int]
    """The wishlist moves by kind: started, watched, completed, paused, resumed, dropped."""
    retries: int
    seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        c = self.counts
        return (
            f"tick seed={self.seed}: "
            f"users +{c['users_created']} ~{c['users_edited']} | "
            f"wishlist +{c['wishlist_added']} ~{c['wishlist_progressed']} "
            f"-{c['wishlist_removed']} | "
            f"ratings +{c['ratings_added']} ~{c['ratings_changed']} -{c['ratings_removed']} | "
            f"{self.rows:,} rows, {self.retries} retries, {self.seconds:.2f} s"
        )

    def as_dict(self) -> dict[str, object]:
        """Plain data (a Lambda handler's return value, a JSON log line)."""
        return {
            "seed": self.seed,
            "counts": dict(self.counts),
            "progress_kinds": dict(self.progress_kinds),
            "rows": self.rows,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "phase_seconds": {k: round(v, 3) for k, v in self.phase_seconds.items()},
        }


def connect(settings: db.Settings | None = None) -> Conn:
    """A session acting as the generator role only (db.GENERATOR_ROLE)."""
    conn = db.connect(settings, application_name=APPLICATION_NAME, role=db.GENERATOR_ROLE)
    conn.execute(f"set lock_timeout = '{LOCK_TIMEOUT}'")
    conn.commit()
    return conn


def check_ready(settings: db.Settings | None = None) -> str:
    """Fail early with one clear line (DatabaseUnavailable, CatalogMissing) unless a tick could
    run; returns a short description of what the generator will work on."""
    with connect(settings) as conn:
        catalog = state.read_catalog(conn)
        row = conn.execute("select count(*) from app.users").fetchone()
        conn.rollback()
    users = int(row[0]) if row else 0
    return f"{len(catalog.anime):,} anime, {len(catalog.genres):,} genres, {users:,} users"


def run_tick(
    config: TickConfig | None = None,
    settings: db.Settings | None = None,
    *,
    on_phase: Callable[[str], None] | None = None,
) -> TickSummary:
    """Run one tick and return what it wrote. Without a seed in `config` a fresh one is drawn
    (and reported in the summary, so the tick can be replayed). Raises db.DatabaseUnavailable,
    generators.CatalogMissing, TickFailed, or psycopg.Error for anything unexpected; in every
    case nothing of the tick is left in the database."""
    config = TickConfig() if config is None else config
    seed = secrets.randbits(32) if config.seed is None else config.seed
    started = time.monotonic()
    jitter = secrets.SystemRandom()  # jitter must differ between processes: not seeded
    with connect(settings) as conn:
        retries = 0
        while True:
            try:
                counts, kinds, phases = _attempt(conn, config, seed, on_phase)
                break
            except RETRYABLE as exc:
                conn.rollback()
                if retries >= config.max_retries:
                    raise TickFailed(
                        f"tick seed={seed} lost {retries + 1} races in a row "
                        f"(last: {type(exc).__name__}: {first_line(exc)}); "
                        "nothing was written"
                    ) from exc
                retries += 1
                ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**retries)
                time.sleep(jitter.uniform(ceiling / 2, ceiling))
    return TickSummary(
        seed=seed,
        counts=counts,
        progress_kinds=kinds,
        retries=retries,
        seconds=time.monotonic() - started,
        phase_seconds=phases,
    )


def _attempt(
    conn: Conn, config: TickConfig, seed: int, on_phase: Callable[[str], None] | None
) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    marks: list[tuple[str, float]] = []

    def phase(name: str) -> None:
        marks.append((name, time.monotonic()))
        if on_phase is not None:
            on_phase(name)

    # The seed alone decides the plan: a retry re-reads the state and plans from the same seed.
    # Drawing the acting users has its own stream, so that what a tick creates (usernames...)
    # does not depend on how many users there are: two ticks of one seed create the same.
    draw = random.Random(f"{seed}/active users")  # noqa: S311  (a simulation, not a secret)
    rng = random.Random(seed)  # noqa: S311
    with conn.transaction():
        phase("read")
        catalog = state.read_catalog(conn)
        users = state.lock_users(conn, state.choose_active_users(conn, draw, config.active_users))
        entries = state.read_entries(conn, users)
        phase("plan")
        plan = plan_tick(rng, catalog, users, entries, config)
        counts = write_plan(conn, plan, on_step=phase)
        hold = os.environ.get(HOLD_BEFORE_COMMIT_ENV)
        if hold:
            time.sleep(float(hold))
        phase("commit")
    marks.append(("", time.monotonic()))
    phases = {name: end - begin for (name, begin), (_, end) in itertools.pairwise(marks)}
    return counts, plan.progress_kinds(), phases
