"""Two stages (gloo on 127.0.0.1) give the greedy tokens of one, under every policy, with requests
running concurrently and some cancelled mid-stream."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.parallel.conftest import TIMEOUT, BackendProbe, assert_gone, stage_pids

PROMPTS = [[(11 * i + k) % 256 for i in range(n)] for k, n in ((1, 5), (2, 30), (3, 17), (4, 44), (5, 9))]
NEW_TOKENS = 10
CANCEL_AFTER = {1: 3, 3: 5}
"""Request index -> tokens after which its consumer leaves the stream (aborting the request)."""
OPTIONS = dict(token_budget=16, dtype="float32", block_size=4)


async def serve(model: str, scheduler: str, pipeline_parallel_size: int) -> tuple[list[list[int]], BackendProbe]:
    probe = BackendProbe()
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)

    async def one(engine: Engine, i: int) -> list[int]:
        tokens: list[int] = []
        async for out in engine.generate(PROMPTS[i], params):
            tokens += out.token_ids
            if len(tokens) >= CANCEL_AFTER.get(i, NEW_TOKENS + 1):
                break
        return tokens

    async with asyncio.timeout(TIMEOUT):
        async with Engine(model, scheduler=scheduler, pipeline_parallel_size=pipeline_parallel_size,
                          plugins=[probe], **OPTIONS) as engine:
            tokens = await asyncio.gather(*(one(engine, i) for i in range(len(PROMPTS))))
            await asyncio.sleep(0)  # the aborts of the cancelled streams are taken before close
    stats = engine.stats()
    assert stats.kv_blocks_free == stats.kv_blocks_total
    return tokens, probe


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm", "orca", "static"])
async def test_two_stages_give_the_greedy_tokens_of_one(tiny_llama, scheduler):
    want, _ = await serve(tiny_llama, scheduler, 1)
    got, probe = await serve(tiny_llama, scheduler, 2)
    assert got == want
    assert [len(t) for t in got] == [CANCEL_AFTER.get(i, NEW_TOKENS) for i in range(len(PROMPTS))]
    assert type(probe.backend).__name__ == "PipelineBackend"
    stages = probe.backend.pipeline_stats()
    assert [s.layers for s in stages] == [(0, 2), (2, 4)]
    assert all(s.num_micro_batches > 0 and 0 < s.busy_seconds <= s.in_flight_seconds for s in stages)
    assert_gone(stage_pids(probe.backend))


async def test_three_stages_pass_hidden_states_through_a_middle_stage(tiny_llama):
    want, _ = await serve(tiny_llama, "sarathi", 1)
    got, probe = await serve(tiny_llama, "sarathi", 3)
    assert got == want
    assert [s.layers for s in probe.backend.pipeline_stats()] == [(0, 1), (1, 2), (2, 4)]
    assert_gone(stage_pids(probe.backend))
