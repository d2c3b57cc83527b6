"""A tiny KV cache forces preemption; every request still finishes with the same tokens."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import SamplingParams
from tests.engine.conftest import TIMEOUT, fake_engine, gather

pytestmark = pytest.mark.loops("asyncio", "trio")


async def run_all(**options):
    prompts = [[i % 7 + 1] * (5 + (i * 13) % 40) for i in range(24)]
    async with fake_engine(**options) as engine:
        results = await gather(
            *(engine.complete(p, SamplingParams(max_tokens=8 + i % 9)) for i, p in enumerate(prompts))
        )
        stats = engine.stats()
    return [r.token_ids for r in results], stats


@pytest.mark.parametrize("prefix_caching", [False, True], ids=["cache-off", "cache-on"])
@pytest.mark.parametrize("num_kv_blocks", [8, 12, 30])
async def test_tiny_kv_cache_gives_the_same_tokens_as_a_large_one(num_kv_blocks, prefix_caching):
    with anyio.fail_after(TIMEOUT):
        large, _ = await run_all(num_kv_blocks=1000, block_size=8, token_budget=32)
        small, stats = await run_all(num_kv_blocks=num_kv_blocks, block_size=8, token_budget=32,
                                     enable_prefix_caching=prefix_caching)
    assert small == large
    assert stats.kv_blocks_free == stats.kv_blocks_total == num_kv_blocks
    if num_kv_blocks < 12:
        assert stats.num_preemptions > 0
    if num_kv_blocks == 30:  # room to keep some blocks: the prompts repeat one token each, so they hit
        assert (stats.prefix_cache_hit_rate > 0) == prefix_caching
