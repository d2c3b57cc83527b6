"""Bubble accounting: per-stage busy time against the time the pipeline has work in flight.

A micro-batch is in flight from the moment the engine hands it to the backend until its tokens come
back; the pipeline is busy while at least one is. Each stage times its own compute per micro-batch
(stage 0 here, the others in their processes, reported back with the result as a float64 tensor), so
a stage's bubble is the in-flight time it spent not computing: waiting for the previous stage, for
the next one to take its output, or for the engine to schedule. Durations only: no clock is compared
across processes.

Imports the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sarathi_sdk import StageStats


class PipelineClock:
    """In-flight wall time and busy time per stage; safe to call from every execute thread."""

    def __init__(self, num_stages: int) -> None:
        self._lock = threading.Lock()
        self._busy = [0.0] * num_stages
        self._micro_batches = 0
        self._in_flight = 0
        self._since = 0.0
        self._in_flight_seconds = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._micro_batches += 1
            if self._in_flight == 0:
                self._in_flight_seconds += time.perf_counter() - self._since

    def add_busy(self, seconds: Sequence[float]) -> None:
        """One micro-batch's busy seconds, one entry per stage."""
        with self._lock:
            for stage, value in enumerate(seconds):
                self._busy[stage] += value

    def stats(self, layers: Sequence[tuple[int, int]]) -> list[StageStats]:
        """Per stage, with `layers[i]` the layer range of stage i; counts a pipeline busy right now up
        to now."""
        with self._lock:
            in_flight = self._in_flight_seconds
            if self._in_flight:
                in_flight += time.perf_counter() - self._since
            return [StageStats(stage_index=i, layers=tuple(layers[i]), num_micro_batches=self._micro_batches,
                               busy_seconds=busy, in_flight_seconds=in_flight)
                    for i, busy in enumerate(self._busy)]

    def reset(self) -> None:
        """Forget what was counted (a benchmark's warm-up); a micro-batch in flight keeps counting."""
        with self._lock:
            self._busy = [0.0] * len(self._busy)
            self._micro_batches = 0
            self._in_flight_seconds = 0.0
            self._since = time.perf_counter()
