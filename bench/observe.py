"""What the benchmarks see of a run: its steps, timed and with the highest RSS in each, through
the exporter's own observer (exporter.Progress.step), as the CLI and Lambda see a run. Nothing
of the exporter is patched."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter import Progress

# the steps of a run that append to the change log, and those that merge into the current state
CHANGE_LOG_STEPS = ("files: changes", "files: deletes", "commit: changes")
CURRENT_STEPS = ("commit: current",)


def rss_kb() -> int:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


@dataclass
class Phases(Progress):
    """Where a run's time and memory go: its steps (the innermost counts, exclusive time) and,
    from a thread sampling RSS every few milliseconds, the highest RSS seen in each."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_kb: dict[str, int] = field(default_factory=dict)
    stack: list[list[Any]] = field(default_factory=list)  # [name, started]
    _stop: threading.Event = field(default_factory=threading.Event)

    def _charge(self, now: float) -> None:
        if self.stack:
            name, started = self.stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - started
            self.stack[-1][1] = now

    @contextlib.contextmanager
    def step(self, name: str, table: str | None = None) -> Iterator[None]:
        if self.stack and self.stack[-1][0] == name:
            yield
            return
        now = time.monotonic()
        self._charge(now)
        self.stack.append([name, now])
        self._sample()
        try:
            yield
        finally:
            self._sample()
            self._charge(time.monotonic())
            self.stack.pop()
            if self.stack:
                self.stack[-1][1] = time.monotonic()

    def _sample(self) -> None:
        name = self.stack[-1][0] if self.stack else "other"
        self.peak_kb[name] = max(self.peak_kb.get(name, 0), rss_kb())

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._sample()

    def __enter__(self) -> Phases:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def group(self, names: tuple[str, ...]) -> tuple[float, float]:
        """Seconds and peak RSS (MB) of these steps together."""
        seconds = sum(s for n, s in self.seconds.items() if n in names)
        peak = max((k for n, k in self.peak_kb.items() if n in names), default=0)
        return seconds, peak / 1024
