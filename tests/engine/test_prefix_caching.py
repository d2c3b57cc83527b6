"""The prefix cache through the Engine (FakeBackend): cached prompt tokens in each request's metrics, the
hit rate in `stats()`, the same tokens as without the cache, and every block back (free or cached)
after aborts, cancellations and the end of every request."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import SamplingParams
from tests.engine.conftest import TIMEOUT, fake_engine, gather, spawn, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")

SYSTEM = [(5 * i) % 997 + 1 for i in range(40)]
PARAMS = SamplingParams(max_tokens=6, ignore_eos=True)


def all_blocks_back(engine) -> bool:
    stats = engine.stats()
    return stats.kv_blocks_free == stats.kv_blocks_total and stats.num_running == stats.num_waiting == 0


async def test_metrics_and_stats_report_the_cached_prompt_tokens():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(enable_prefix_caching=True, block_size=8, token_budget=16) as engine:
            assert engine.stats().prefix_cache_hit_rate == 0.0
            first = await engine.complete(SYSTEM + [1, 2, 3], PARAMS)
            second = await engine.complete(SYSTEM + [4, 5], PARAMS)
            stats = engine.stats()
            assert all_blocks_back(engine)
    assert first.metrics.num_cached_tokens == 0
    assert second.metrics.num_cached_tokens == 40  # five whole blocks of the system prompt
    assert stats.prefix_cache_hit_rate == pytest.approx(40 / (43 + 42))


async def test_the_hit_rate_is_zero_with_the_cache_off():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(block_size=8, token_budget=16) as engine:
            outputs = [await engine.complete(SYSTEM + [i], PARAMS) for i in range(3)]
            assert engine.stats().prefix_cache_hit_rate == 0.0
    assert all(o.metrics.num_cached_tokens == 0 for o in outputs)


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm", "orca", "static"])
async def test_concurrent_and_sequential_requests_get_the_tokens_they_get_without_the_cache(scheduler):
    prompts = [SYSTEM + [(11 * i + j) % 997 + 1 for j in range(3 + 5 * i)] for i in range(6)]

    async def serve(**options):
        async with fake_engine(scheduler=scheduler, block_size=4, token_budget=16, max_num_seqs=4,
                               **options) as engine:
            concurrent = await gather(*(engine.complete(p, PARAMS) for p in prompts))
            sequential = [await engine.complete(p, PARAMS) for p in prompts]
            assert all_blocks_back(engine)
            return [o.token_ids for o in concurrent + sequential], engine.stats()

    with anyio.fail_after(TIMEOUT):
        off, _ = await serve()
        on, stats = await serve(enable_prefix_caching=True)
    assert on == off
    assert stats.prefix_cache_hit_rate > 0.5


async def test_aborted_and_cancelled_requests_leave_every_block_free_or_cached():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(enable_prefix_caching=True, block_size=4, token_budget=8, step_delay=0.002) as engine:
            await engine.complete(SYSTEM, PARAMS)
            long = SamplingParams(max_tokens=200, ignore_eos=True)
            async with anyio.create_task_group() as tg:
                tasks = [spawn(tg, engine.complete(SYSTEM + [i] * 30, long, request_id=f"r{i}")) for i in range(4)]
                await wait_for(lambda: engine.stats().num_steps > 12)
                await engine.abort("r0")
                tasks[1].cancel()
                stream = engine.generate(SYSTEM + [9] * 9, long)
                async for _ in stream:
                    break
                await stream.aclose()
                for task in tasks[2:]:
                    task.cancel()
            await wait_for(lambda: all_blocks_back(engine))
