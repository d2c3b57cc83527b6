"""Fault injection: a failing step and a stalled step (the watchdog) end every stream with EngineDeadError,
free every block, and close() returns promptly."""

from __future__ import annotations

import math
import time

import anyio
import pytest

from sarathi_sdk import ConfigError, Engine, EngineConfig, EngineDeadError, EngineState, SamplingParams
from tests.engine.conftest import TIMEOUT, StallingBackend, drained, fake_engine, gather, spawn, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "600"])
def test_step_timeout_is_validated(bad):
    with pytest.raises(ConfigError, match="step_timeout"):
        EngineConfig(step_timeout=bad)


def test_step_timeout_defaults_to_ten_minutes_and_can_be_off():
    assert EngineConfig().step_timeout == 600.0
    assert EngineConfig(step_timeout=None).step_timeout is None
    assert EngineConfig(step_timeout=1).step_timeout == 1


@pytest.mark.parametrize("pipeline_parallel_size", [1, 2])
async def test_a_failing_step_ends_every_stream_and_frees_every_block(pipeline_parallel_size):
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(fail_at_step=6, step_delay=0.001, token_budget=16, max_num_seqs=4,
                               pipeline_parallel_size=pipeline_parallel_size) as engine:
            # more requests than max_num_seqs: some are waiting when the engine dies
            results = await gather(
                *(engine.complete([i + 1] * (5 + 7 * i), SamplingParams(max_tokens=20)) for i in range(8)),
                return_exceptions=True,
            )
            assert all(isinstance(r, EngineDeadError) for r in results), results
            assert all("failure requested at step 6" in str(r) for r in results)
            assert engine.state is EngineState.DEAD
            assert drained(engine)
            with pytest.raises(EngineDeadError):
                await engine.check_health()
            with pytest.raises(EngineDeadError):
                await engine.complete([1])
    assert engine.state is EngineState.CLOSED
    assert drained(engine)


async def test_a_stalled_step_trips_the_watchdog():
    backend = StallingBackend(stall_at_step=4, step_delay=0.001)
    try:
        with anyio.fail_after(TIMEOUT):
            engine = Engine(backend=backend, step_timeout=0.2, token_budget=16)
            await engine.start()
            streams = [engine.generate([i + 1] * 10, SamplingParams(max_tokens=50)) for i in range(3)]
            started = time.perf_counter()
            results = await gather(*(_consume(s) for s in streams), return_exceptions=True)
            waited = time.perf_counter() - started
            assert backend.stalled.is_set()
            assert all(isinstance(r, EngineDeadError) for r in results), results
            assert all("exceeded step_timeout (0.2 seconds)" in str(r) for r in results)
            assert waited < 5
            with pytest.raises(EngineDeadError, match="step_timeout"):
                await engine.check_health()
            assert drained(engine)
            closing = time.perf_counter()
            await engine.close()  # does not wait for the stuck worker thread
            assert time.perf_counter() - closing < 1.0
            assert engine.state is EngineState.CLOSED
            assert not backend.release.is_set()
    finally:
        backend.release.set()


async def test_the_watchdog_spares_steps_that_finish_in_time():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.01, step_timeout=0.5) as engine:
            done = await engine.complete([1, 2, 3], SamplingParams(max_tokens=10))
            assert done.finish_reason == "length"
            await engine.check_health()


async def test_close_while_a_step_is_in_flight_waits_for_it_and_frees_its_blocks():
    backend = StallingBackend(stall_at_step=2, max_stall=0.3)
    with anyio.fail_after(TIMEOUT):
        engine = Engine(backend=backend, pipeline_parallel_size=2, token_budget=8)
        async with anyio.create_task_group() as tg:  # outside the engine's start() .. close()
            await engine.start()
            task = spawn(tg, engine.complete(list(range(1, 40)), SamplingParams(max_tokens=5)))
            await wait_for(backend.stalled.is_set)
            await engine.close()
            assert (await task.result()).finish_reason == "abort"
        assert drained(engine)


async def _consume(stream):
    return [o async for o in stream]
