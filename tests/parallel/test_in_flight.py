"""With two batches in flight, no policy ever schedules a request that is in the other one."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.engine.conftest import OverlapCheckingBackend


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm", "orca", "static"])
async def test_no_request_is_in_two_batches_in_flight(scheduler):
    backend = OverlapCheckingBackend(step_delay=0.002)
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    async with asyncio.timeout(60):
        async with Engine(backend=backend, scheduler=scheduler, pipeline_parallel_size=2, token_budget=16,
                          max_num_seqs=8, num_kv_blocks=64, block_size=4) as engine:
            await asyncio.gather(*(engine.complete(list(range(1, 3 + 5 * i)), params) for i in range(12)))
    assert backend.overlaps == []
    # orca and static put every request in one step: nothing is left to fill the second slot
    assert backend.max_concurrent == (2 if scheduler in ("sarathi", "vllm") else 1)
