"""Streaming through the engine with FakeBackend: deltas, concurrency, finish reasons, metrics."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import FinishReason, SamplingParams
from tests.engine.conftest import TIMEOUT, fake_engine, gather, reference_tokens

pytestmark = pytest.mark.loops("asyncio", "trio")


async def test_deltas_concatenate_to_the_whole_output():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(token_budget=8) as engine:
            prompt = list(range(1, 21))
            outputs = [o async for o in engine.generate(prompt, SamplingParams(max_tokens=12))]
            assert all(len(o.token_ids) >= 1 for o in outputs)
            assert [t for o in outputs for t in o.token_ids] == reference_tokens(prompt, 12)
            assert [o.finished for o in outputs] == [False] * (len(outputs) - 1) + [True]
            assert outputs[-1].finish_reason == "length" == FinishReason.LENGTH


async def test_concurrent_streams_each_get_their_own_tokens():
    prompts = {f"r{i}": [i + 1] * (3 + 5 * i) for i in range(6)}

    async def consume(engine, rid):
        tokens = []
        async for out in engine.generate(prompts[rid], SamplingParams(max_tokens=10), request_id=rid):
            assert out.request_id == rid
            tokens.extend(out.token_ids)
        return tokens

    with anyio.fail_after(TIMEOUT):
        async with fake_engine(token_budget=16) as engine:
            results = await gather(*(consume(engine, rid) for rid in prompts))
    for rid, tokens in zip(prompts, results):
        assert tokens == reference_tokens(prompts[rid], 10)


async def test_complete_returns_whole_result_with_metrics():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            done = await engine.complete([5, 6, 7], SamplingParams(max_tokens=4))
    assert done.finished and len(done.token_ids) == 4 and done.finish_reason == "length"
    m = done.metrics
    assert m.num_prompt_tokens == 3 and m.num_generated_tokens == 4 and len(m.tbts) == 3
    assert m.ttft >= m.scheduling_delay >= 0 and m.e2e_latency >= m.ttft


async def test_stop_token_ids_end_with_stop():
    first = reference_tokens([9, 9, 9], 3)
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            done = await engine.complete([9, 9, 9], SamplingParams(max_tokens=10, stop_token_ids=[first[1]]))
    assert done.token_ids == tuple(first[:2]) and done.finish_reason == "stop"


async def test_slow_consumer_gets_merged_deltas():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            stream = engine.generate([1, 2, 3], SamplingParams(max_tokens=20))
            first = await anext(stream)
            await anyio.sleep(0.2)  # the engine runs ahead meanwhile
            rest = [o async for o in stream]
    assert len(first.token_ids) + sum(len(o.token_ids) for o in rest) == 20
    assert len(rest) < 19


@pytest.mark.parametrize("budget", [1, 3, 64])
async def test_output_is_independent_of_token_budget(budget):
    prompts = [[i] * (2 + 7 * i) for i in range(1, 5)]
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(token_budget=budget) as engine:
            results = await gather(
                *(engine.complete(p, SamplingParams(max_tokens=6)) for p in prompts)
            )
    assert [list(r.token_ids) for r in results] == [reference_tokens(p, 6) for p in prompts]
