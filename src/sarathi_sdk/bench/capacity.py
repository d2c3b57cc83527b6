"""Capacity under a latency SLO: the highest request rate a scheduler sustains, by binary search.

Sarathi-Serve's method (OSDI'24, section 5): a load is sustained when the P99 time between tokens stays
within the TBT SLO and the median scheduling delay within a bound (2 s in the paper), so a system
cannot pass by queueing requests without bound. Each probe serves the same workload at one Poisson
rate; rates double from a start until one fails, then the interval is bisected. Imports only the
standard library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_MAX_SCHEDULING_DELAY = 2.0


@dataclass(frozen=True, slots=True)
class Probe:
    rate: float
    tbt_p99: float
    scheduling_delay_p50: float
    passed: bool


@dataclass(frozen=True, slots=True)
class CapacitySearch:
    tbt_slo: float
    max_scheduling_delay: float = DEFAULT_MAX_SCHEDULING_DELAY
    start_rate: float = 1.0
    max_doublings: int = 8
    bisections: int = 5

    def passes(self, tbt_p99: float, scheduling_delay_p50: float) -> bool:
        return tbt_p99 <= self.tbt_slo and scheduling_delay_p50 <= self.max_scheduling_delay

    async def run(self, measure: Callable[[float], Awaitable[tuple[float, float]]]) -> tuple[float, list[Probe]]:
        """(capacity in requests/s, every probe in the order run). `measure(rate)` serves the workload
        at `rate` and returns (P99 TBT, median scheduling delay). Capacity 0 means even the lowest
        rate probed failed; a capacity equal to the highest rate probed means none failed."""
        probes: list[Probe] = []

        async def probe(rate: float) -> bool:
            tbt, delay = await measure(rate)
            probes.append(Probe(rate, tbt, delay, self.passes(tbt, delay)))
            return probes[-1].passed

        low, high = 0.0, None
        rate = self.start_rate
        for _ in range(self.max_doublings + 1):
            if not await probe(rate):
                high = rate
                break
            low, rate = rate, rate * 2
        if high is None:
            return low, probes
        for _ in range(self.bisections):
            rate = (low + high) / 2
            if await probe(rate):
                low = rate
            else:
                high = rate
        return low, probes
