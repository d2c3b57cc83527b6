"""The capacity search on a fake latency model whose capacity is known."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk.bench.capacity import CapacitySearch


def _fake_system(capacity: float, calls: list[float]):
    """P99 TBT rises with load and crosses 0.1 s exactly at `capacity` requests/s; scheduling delay
    stays small until 1.5x capacity, where queues grow without bound."""

    async def measure(rate: float) -> tuple[float, float]:
        calls.append(rate)
        return 0.1 * rate / capacity, 0.1 if rate < 1.5 * capacity else 60.0

    return measure


@pytest.mark.parametrize("capacity", [0.3, 1.0, 3.3, 17.0])
def test_search_brackets_the_true_capacity(capacity):
    calls: list[float] = []
    search = CapacitySearch(tbt_slo=0.1, start_rate=1.0, bisections=8)
    found, probes = asyncio.run(search.run(_fake_system(capacity, calls)))
    assert found <= capacity
    assert capacity - found <= capacity / 100 + 1.0 / 2**8
    assert [p.rate for p in probes] == calls
    assert all(p.passed == (p.rate <= capacity) for p in probes)


def test_median_scheduling_delay_bounds_capacity_too():
    async def measure(rate: float) -> tuple[float, float]:
        return 0.0, 0.5 * rate  # TBT always met; delay crosses 2 s at 4 req/s

    found, _ = asyncio.run(CapacitySearch(tbt_slo=1.0, start_rate=1.0, bisections=10).run(measure))
    assert found == pytest.approx(4.0, abs=0.01)


def test_a_system_that_never_meets_the_slo_has_zero_capacity():
    async def measure(rate: float) -> tuple[float, float]:
        return 5.0, 0.0

    found, probes = asyncio.run(CapacitySearch(tbt_slo=1.0, bisections=3).run(measure))
    assert found == 0.0 and len(probes) == 4 and not any(p.passed for p in probes)


def test_a_system_that_always_meets_it_stops_after_the_doublings():
    async def measure(rate: float) -> tuple[float, float]:
        return 0.0, 0.0

    found, probes = asyncio.run(CapacitySearch(tbt_slo=1.0, start_rate=0.5, max_doublings=3).run(measure))
    assert found == 4.0 and [p.rate for p in probes] == [0.5, 1.0, 2.0, 4.0]
