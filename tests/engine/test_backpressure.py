"""max_waiting_requests: past it a request is refused at once with EngineOverloadedError, nothing else changes."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import ConfigError, EngineConfig, EngineOverloadedError, SamplingParams, SarathiError
from tests.engine.conftest import TIMEOUT, fake_engine, gather, reference_tokens, spawn, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_max_waiting_requests_is_validated(bad):
    with pytest.raises(ConfigError, match="max_waiting_requests"):
        EngineConfig(max_waiting_requests=bad)


def test_max_waiting_requests_defaults_to_no_limit():
    assert EngineConfig().max_waiting_requests is None
    assert EngineConfig(max_waiting_requests=1).max_waiting_requests == 1


def test_overloaded_is_a_sarathi_error():
    assert issubclass(EngineOverloadedError, SarathiError)


async def test_a_request_past_the_limit_is_refused_and_the_others_are_undisturbed():
    prompts = [[i + 1] * (3 + i) for i in range(4)]
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002, max_num_seqs=1, max_waiting_requests=3) as engine, \
                anyio.create_task_group() as tg:
            running = engine.generate([9] * 4, SamplingParams(max_tokens=1000), request_id="blocker")
            await anext(running)  # admitted and running; with max_num_seqs=1 everyone else waits
            queued = [spawn(tg, engine.complete(p, SamplingParams(max_tokens=5))) for p in prompts[:3]]
            await wait_for(lambda: engine.stats().num_waiting == 3)
            before = engine.stats()
            with pytest.raises(EngineOverloadedError, match="3 requests are waiting.*max_waiting_requests=3"):
                await engine.complete(prompts[3], SamplingParams(max_tokens=5), request_id="refused")
            with pytest.raises(EngineOverloadedError):
                await anext(engine.generate(prompts[3]))
            after = engine.stats()
            assert (after.num_waiting, after.num_running) == (before.num_waiting, before.num_running) == (3, 1)
            assert after.kv_blocks_free == before.kv_blocks_free
            await running.aclose()
            results = [await task.result() for task in queued]
            assert [list(r.token_ids) for r in results] == [reference_tokens(p, 5) for p in prompts[:3]]
            # room again: the refused request goes through, under the id it was refused with
            done = await engine.complete(prompts[3], SamplingParams(max_tokens=5), request_id="refused")
            assert list(done.token_ids) == reference_tokens(prompts[3], 5)
            await engine.check_health()


async def test_without_a_limit_nothing_is_refused():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(max_num_seqs=1) as engine:
            results = await gather(*(engine.complete([i + 1], SamplingParams(max_tokens=2)) for i in range(50)))
    assert all(r.finish_reason == "length" for r in results)


async def test_a_burst_is_cut_at_the_limit():
    """Requests arriving together before the step loop runs: the first `max_waiting_requests` wait, the
    rest are refused. (First in the order they arrive: asyncio starts tasks in order, trio in any order.)"""
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(max_waiting_requests=4) as engine:
            arrivals = []

            async def arrive(i):
                arrivals.append(i)  # no wait before the request is added or refused
                return await engine.complete([i + 1] * 3, SamplingParams(max_tokens=3))

            await anyio.wait_all_tasks_blocked()  # the step loop has run since start() and waits for work
            results = await gather(*(arrive(i) for i in range(10)), return_exceptions=True)
            assert sorted(arrivals) == list(range(10))
            arrived = [results[i] for i in arrivals]
            assert [type(r).__name__ for r in arrived] == ["RequestOutput"] * 4 + ["EngineOverloadedError"] * 6
            stats = engine.stats()
            assert (stats.num_waiting, stats.num_running, stats.kv_blocks_free) == (0, 0, stats.kv_blocks_total)
