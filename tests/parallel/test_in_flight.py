"""With two batches in flight, no policy ever schedules a request that is in the other one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sarathi_sdk import Engine, SamplingParams, ScheduledBatch, StepOutput
from sarathi_sdk.testing import FakeBackend


class OverlapCheckingBackend(FakeBackend):
    """Records, at each step's start, any request already inside a step still executing."""

    def __init__(self) -> None:
        super().__init__(step_delay=0.002)
        self._lock = threading.Lock()
        self._executing: list[set[str]] = []
        self.overlaps: list[set[str]] = []
        self.max_concurrent = 0

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        ids = set(batch.request_ids)
        with self._lock:
            self.overlaps += [ids & other for other in self._executing if ids & other]
            self._executing.append(ids)
            self.max_concurrent = max(self.max_concurrent, len(self._executing))
        try:
            return super().execute(batch)
        finally:
            with self._lock:
                self._executing.remove(ids)


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm", "orca", "static"])
async def test_no_request_is_in_two_batches_in_flight(scheduler):
    backend = OverlapCheckingBackend()
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    async with asyncio.timeout(60):
        async with Engine(backend=backend, scheduler=scheduler, pipeline_parallel_size=2, token_budget=16,
                          max_num_seqs=8, num_kv_blocks=64, block_size=4) as engine:
            await asyncio.gather(*(engine.complete(list(range(1, 3 + 5 * i)), params) for i in range(12)))
    assert backend.overlaps == []
    # orca and static put every request in one step: nothing is left to fill the second slot
    assert backend.max_concurrent == (2 if scheduler in ("sarathi", "vllm") else 1)
