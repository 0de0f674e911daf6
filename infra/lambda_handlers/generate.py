"""Lambda entry point of the generators: one `generators.run_tick` as the generator role. The
event is the tick's configuration (generators.TickConfig fields: the schedule's Input, a
template parameter), so the schedule decides the size of each tick."""

from __future__ import annotations

import dataclasses
from typing import Any

from animedb import db
from generators import GeneratorError, TickConfig, run_tick
from lambda_handlers import rds, runtime

TICK_FIELDS = frozenset(field.name for field in dataclasses.fields(TickConfig))


def handler(event: object, context: object) -> dict[str, Any]:
    """One tick; its summary (TickSummary.as_dict) is the result. Example event:
    {"new_users": 5, "ratings": 25}; an empty event runs a tick of the default sizes."""
    fields = runtime.event_fields(event, TICK_FIELDS, "generator")
    try:
        config = TickConfig.from_mapping(fields)
    except GeneratorError as exc:
        raise runtime.fail(f"generator: the event is not a tick configuration: {exc}") from None

    def work(settings: rds.RdsSettings) -> dict[str, Any]:
        summary = run_tick(config, settings)
        return {**summary.as_dict(), "database": settings.describe()}

    return runtime.invoke("generator", db.GENERATOR_ROLE, work, (GeneratorError,))
