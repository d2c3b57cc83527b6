"""check_health, use after close, and loop affinity: every misuse is a typed error at once, never a hang."""

from __future__ import annotations

import asyncio
import functools

import anyio
import anyio.to_thread
import pytest

from sarathi_sdk import EngineDeadError, EngineState, EngineStateError, SamplingParams
from tests.engine.conftest import TIMEOUT, drained, fake_engine, reference_tokens, spawn

pytestmark = pytest.mark.loops("asyncio", "trio")


async def test_check_health_through_the_lifecycle():
    engine = fake_engine(fail_at_step=3)
    with pytest.raises(EngineStateError, match="not started"):
        await engine.check_health()
    with anyio.fail_after(TIMEOUT):
        async with engine:
            await engine.check_health()
            with pytest.raises(EngineDeadError):
                await engine.complete([1, 2, 3], SamplingParams(max_tokens=10))
            with pytest.raises(EngineDeadError, match="FakeBackendError: failure requested at step 3"):
                await engine.check_health()
    with pytest.raises(EngineStateError, match="closed"):
        await engine.check_health()


async def test_a_healthy_engine_stays_healthy_under_load():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            async with anyio.create_task_group() as tg:
                work = [spawn(tg, engine.complete([i + 1] * 5, SamplingParams(max_tokens=8))) for i in range(8)]
                for _ in range(5):
                    await engine.check_health()
                    await anyio.sleep(0)
            for task in work:
                await task.result()
            await engine.check_health()


async def test_close_ends_streams_in_every_state_with_abort_and_leaves_true_stats():
    """Waiting, prefilling, decoding and in-flight streams each end with a final "abort" output."""
    with anyio.fail_after(TIMEOUT):
        engine = fake_engine(step_delay=0.002, max_num_seqs=2, token_budget=8, pipeline_parallel_size=2)
        async with anyio.create_task_group() as tg:  # outside the engine's start() .. close()
            await engine.start()
            decoding = engine.generate([1, 2], SamplingParams(max_tokens=1000))
            await anext(decoding)
            prefilling = engine.generate(list(range(1, 200)), SamplingParams(max_tokens=10))
            waiting = engine.generate([3, 4], SamplingParams(max_tokens=10))
            tasks = [spawn(tg, _collect(s)) for s in (prefilling, waiting)]
            await anyio.sleep(0.02)
            await engine.close()
            assert engine.state is EngineState.CLOSED
            finals = [[o async for o in decoding]] + [await task.result() for task in tasks]
        for outputs in finals:
            assert outputs[-1].finished and outputs[-1].finish_reason == "abort"
            assert outputs[-1].metrics is not None
        assert drained(engine)  # stats after close: the final numbers, and true


async def _collect(stream):
    return [o async for o in stream]


async def test_use_after_close_is_a_state_error_but_stats_answers():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            await engine.complete([1, 2], SamplingParams(max_tokens=3))
        steps = engine.stats().num_steps
        for use in (
            lambda: engine.complete([1]),
            lambda: anext(engine.generate([1])),
            lambda: anext(engine.chat([{"role": "user", "content": "hi"}])),
            lambda: engine.abort("anything"),
            lambda: engine.check_health(),
        ):
            with pytest.raises(EngineStateError, match="closed"):
                await use()
        await engine.close()  # idempotent
        assert engine.stats().num_steps == steps == 3
        assert drained(engine)


async def test_abort_of_an_unknown_id_is_harmless():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:
            await engine.abort("never-was")
            done = await engine.complete([7, 7], SamplingParams(max_tokens=4), request_id="r")
            await engine.abort("r")  # already finished
            assert list(done.token_ids) == reference_tokens([7, 7], 4)
            await engine.check_health()


async def test_abort_on_a_dead_engine_is_harmless():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(fail_at_step=1) as engine:
            with pytest.raises(EngineDeadError):
                await engine.complete([1], request_id="r")
            await engine.abort("r")


async def assert_dead_of_cancellation(stream, engine) -> None:
    """The open stream ends with `EngineDeadError` naming the cancellation, the engine says it is dead,
    and every block is back."""
    with pytest.raises(EngineDeadError, match="cancelled before close"):
        async for _ in stream:
            pass
    with pytest.raises(EngineDeadError):
        await engine.check_health()
    assert drained(engine)


async def test_a_step_loop_cancelled_from_outside_is_a_dead_engine_not_a_hang():
    """As when an app cancels every task at shutdown, or its event loop ends, before close()."""
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            stream = engine.generate([1, 2, 3], SamplingParams(max_tokens=1000))
            await anext(stream)
            engine._parts.tasks._task_group.cancel_scope.cancel()  # the task group the step loop runs in
            await assert_dead_of_cancellation(stream, engine)


@pytest.mark.loops("asyncio")  # asyncio's own way out: cancelling tasks it did not start; trio has none
async def test_cancelling_every_other_task_is_a_dead_engine_not_a_hang():
    """As an asyncio app does at shutdown: `task.cancel()` on every task but its own, the engine's too."""
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(step_delay=0.002) as engine:
            stream = engine.generate([1, 2, 3], SamplingParams(max_tokens=1000))
            await anext(stream)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await assert_dead_of_cancellation(stream, engine)


@pytest.mark.parametrize("loop_name", ["asyncio", "trio"])
def test_an_engine_used_from_a_second_run_of_its_event_loop_says_so(loop_name):
    """`asyncio.run` (or `trio.run`) twice: the engine started in the first refuses the second."""
    engine = fake_engine()

    async def first():
        await engine.start()
        await engine.complete([1, 2], SamplingParams(max_tokens=2))

    async def second():
        with anyio.fail_after(5):
            for use in (
                lambda: engine.complete([1]),
                lambda: anext(engine.generate([1])),
                lambda: engine.abort("x"),
                lambda: engine.check_health(),
                lambda: engine.close(),
            ):
                with pytest.raises(EngineStateError, match="event loop it was started in"):
                    await use()

    anyio.run(first, backend=loop_name)
    anyio.run(second, backend=loop_name)


async def test_an_engine_used_from_a_loop_in_another_thread_says_so_and_stays_healthy(loop_name):
    """The other loop is of the same kind as the engine's: asyncio in asyncio's case, trio in trio's."""
    with anyio.fail_after(TIMEOUT):
        async with fake_engine() as engine:

            async def elsewhere():
                with anyio.fail_after(5):
                    with pytest.raises(EngineStateError, match="event loop it was started in"):
                        await engine.complete([1, 2])
                    with pytest.raises(EngineStateError, match="event loop it was started in"):
                        await engine.check_health()

            await anyio.to_thread.run_sync(functools.partial(anyio.run, elsewhere, backend=loop_name))
            await engine.check_health()
            done = await engine.complete([5, 6], SamplingParams(max_tokens=3))
            assert list(done.token_ids) == reference_tokens([5, 6], 3)
            assert drained(engine)
