"""Through the real Engine over FakeBackend: every policy serves the same requests with the same tokens.

FakeBackend's token is a function of the whole context read back through the block table, so any
policy that chunked, batched, preempted or pipelined a request wrongly would change its tokens.
"""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import SamplingParams
from tests.engine.conftest import TIMEOUT, fake_engine
from tests.scheduling.strategies import SCHEDULERS

PROMPTS = [[(7 * i + j) % 997 + 1 for j in range(length)] for i, length in enumerate((3, 50, 9, 120, 1, 33, 64, 17))]
MAX_TOKENS = (20, 5, 12, 3, 30, 8, 16, 1)


async def serve_all(scheduler: str, **options) -> dict[int, tuple[int, ...]]:
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(scheduler=scheduler, **options) as engine:
            outputs = await asyncio.gather(*(
                engine.complete(prompt, SamplingParams(max_tokens=n, ignore_eos=True), priority=i % 3)
                for i, (prompt, n) in enumerate(zip(PROMPTS, MAX_TOKENS))
            ))
            assert engine.stats().kv_blocks_free == engine.stats().kv_blocks_total
    for output in outputs:
        assert output.finish_reason == "length"
    return {i: output.token_ids for i, output in enumerate(outputs)}


@pytest.mark.parametrize(
    "options",
    [
        {"token_budget": 32},
        {"token_budget": 16, "max_num_seqs": 4, "policy_order": "priority"},
        {"token_budget": 64, "num_kv_blocks": 32, "block_size": 4},  # forces preemption
        {"token_budget": 24, "pipeline_parallel_size": 2, "num_kv_blocks": 14},
    ],
    ids=["plain", "priority", "preempting", "pipelined"],
)
@pytest.mark.parametrize("prefix_caching", [False, True], ids=["cache-off", "cache-on"])
async def test_all_policies_produce_identical_tokens(options, prefix_caching):
    results = {scheduler: await serve_all(scheduler, enable_prefix_caching=prefix_caching, **options)
               for scheduler in SCHEDULERS}
    reference = await serve_all("sarathi", **options) if prefix_caching else results["sarathi"]
    for scheduler in SCHEDULERS:
        assert results[scheduler] == reference, scheduler


async def test_sarathi_options_do_not_change_tokens():
    reference = await serve_all("sarathi", token_budget=32)
    tuned = await serve_all(
        "sarathi", token_budget=32, max_num_seqs=8, max_num_partial_prefills=1, long_prefill_token_threshold=8,
        enable_dynamic_chunking_schedule=True, low_chunk_size=8, chunk_schedule_max_tokens=64,
        chunk_schedule_stages=3,
    )
    assert tuned == reference


async def test_priority_reaches_the_policy_through_generate():
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(scheduler="sarathi", policy_order="priority", token_budget=8, max_num_seqs=1) as engine:
            params = SamplingParams(max_tokens=2)
            done = await asyncio.gather(
                engine.complete([1] * 8, params, request_id="low", priority=3),
                engine.complete([2] * 8, params, request_id="high", priority=-1),
            )
    low, high = done
    assert high.metrics.first_token_time < low.metrics.first_token_time
