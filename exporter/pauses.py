"""Fault injection for the crash tests: ANIMEDB_EXPORT_PAUSE_AT=<step> stops a run (or
maintenance) at that point until it is killed; <step>:<seconds> pauses, then goes on."""

from __future__ import annotations

import os
import sys
import time

PAUSE_VARIABLE = "ANIMEDB_EXPORT_PAUSE_AT"
# the points a run pauses at, in order (maintenance's come after the run's commit)
RUN_STEPS = ("after_pending", "during_files", "after_files", "between_commits", "after_commits")
MAINTENANCE_STEPS = ("after_rewrite_files", "after_rewrite", "after_expire", "during_sweep")


def pause_if_asked(step: str) -> None:
    asked, _, seconds = os.environ.get(PAUSE_VARIABLE, "").partition(":")
    if asked == step:
        print(f"paused at {step}", file=sys.stderr, flush=True)
        time.sleep(float(seconds) if seconds else 3600)
