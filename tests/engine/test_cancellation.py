"""Leaving a stream early aborts its request and frees its KV blocks: under asyncio and trio alike."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from sarathi_sdk import SamplingParams
from tests.engine.conftest import TIMEOUT, drained, fake_engine, spawn, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")


async def assert_freed_and_serving(engine) -> None:
    """The cancelled request's blocks come back, and the engine serves the next request."""
    await wait_for(lambda: drained(engine))
    done = await engine.complete([1, 2], SamplingParams(max_tokens=3))
    assert done.finish_reason == "length"


async def test_break_out_of_async_for_frees_every_block():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            async for _ in engine.generate(list(range(1, 100)), SamplingParams(max_tokens=1000)):
                assert engine.stats().kv_blocks_free < engine.stats().kv_blocks_total
                break
            await wait_for(lambda: drained(engine))


async def test_aclose_aborts_and_frees():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            stream = engine.generate(list(range(1, 50)), SamplingParams(max_tokens=1000))
            await anext(stream)
            await stream.aclose()
            await wait_for(lambda: drained(engine))


@pytest.mark.loops("asyncio")  # asyncio's own task.cancel(); the loop-neutral form is the cancel scope below
async def test_cancelling_the_consuming_task_aborts_and_frees():
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            started = asyncio.Event()

            async def consume():
                async for _ in engine.generate(list(range(1, 50)), SamplingParams(max_tokens=1000)):
                    started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await assert_freed_and_serving(engine)


async def test_cancelling_the_scope_around_the_consumer_aborts_and_frees():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            started = anyio.Event()

            async def consume(scope):
                with scope:
                    async for _ in engine.generate(list(range(1, 50)), SamplingParams(max_tokens=1000)):
                        started.set()

            scope = anyio.CancelScope()
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume, scope)
                await started.wait()
                scope.cancel()
            assert scope.cancelled_caught
            await assert_freed_and_serving(engine)


async def test_cancelling_the_scope_in_the_consuming_task_itself_aborts_and_frees():
    """The same, the cancel scope around the `async for` cancelled from inside it, at its next wait."""
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            with anyio.CancelScope() as scope:
                async for _ in engine.generate(list(range(1, 50)), SamplingParams(max_tokens=1000)):
                    scope.cancel()
            assert scope.cancelled_caught
            await assert_freed_and_serving(engine)


async def test_abort_by_id_ends_the_stream_with_abort():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            stream = engine.generate([1, 2, 3], SamplingParams(max_tokens=1000), request_id="victim")
            await anext(stream)
            await engine.abort("victim")
            outputs = [o async for o in stream]
            assert outputs[-1].finished and outputs[-1].finish_reason == "abort"
            assert outputs[-1].metrics is not None
            await wait_for(lambda: drained(engine))


async def test_cancelling_one_stream_leaves_the_others_intact():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.001) as engine:
            alone = await engine.complete([4, 4, 4], SamplingParams(max_tokens=30))
            async with anyio.create_task_group() as tg:
                keep = spawn(tg, engine.complete([4, 4, 4], SamplingParams(max_tokens=30)))
                async for _ in engine.generate([8, 8], SamplingParams(max_tokens=1000)):
                    break
                assert (await keep.result()).token_ids == alone.token_ids


async def test_close_ends_open_streams_with_abort():
    with anyio.fail_after(TIMEOUT):
        engine = fake_engine(step_delay=0.002)
        await engine.start()
        stream = engine.generate([1, 2, 3], SamplingParams(max_tokens=1000))
        await anext(stream)
        await engine.close()
        outputs = [o async for o in stream]
        assert outputs[-1].finish_reason == "abort"
