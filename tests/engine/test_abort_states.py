"""Abort in every state a request can be in frees its blocks before the next step, and no later batch
carries it: waiting, mid-prefill, decoding, in flight, preempted."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import Engine, SamplingParams, hookimpl
from sarathi_sdk.testing import FakeBackend
from tests.engine.conftest import TIMEOUT, StallingBackend, drained, spawn, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")


class StepLog:
    """Each step's requests and free blocks as the engine ends it, before it schedules the next."""

    def __init__(self):
        self.ends: list[tuple[tuple[str, ...], int]] = []

    @hookimpl
    def sarathi_on_step_end(self, batch, stats):
        self.ends.append((batch.request_ids, stats.kv_blocks_free))

    def with_request(self, request_id: str, since: int = 0) -> list[int]:
        """Free blocks at the end of each step from `since` on that carried the request."""
        return [free for ids, free in self.ends[since:] if request_id in ids]


def make_engine(backend=None, **options) -> tuple[Engine, StepLog]:
    log = StepLog()
    engine = Engine(backend=backend or FakeBackend(step_delay=0.002), plugins=[log], block_size=4, **options)
    return engine, log


async def consume(stream) -> list:
    return [o async for o in stream]


async def settle(engine, log: StepLog, mark: int) -> None:
    """Wait until the victim's blocks are free; the one step that may end after the abort is the one it
    was in flight in, and that step already ends with every block free."""
    await wait_for(lambda: drained(engine))
    await anyio.sleep(0.02)  # room for a (wrong) further step to show up
    after = log.ends[mark:]
    assert len(after) <= 1
    assert all(free == engine.stats().kv_blocks_total for _, free in after)


async def test_abort_while_waiting():
    with anyio.fail_after(TIMEOUT):
        engine, log = make_engine(max_num_seqs=1, token_budget=8)
        async with engine, anyio.create_task_group() as tg:
            blocker = engine.generate([1] * 4, SamplingParams(max_tokens=1000))
            await anext(blocker)
            victim = spawn(tg, consume(engine.generate([2] * 4, request_id="v")))
            await wait_for(lambda: engine.stats().num_waiting == 1)
            before = engine.stats()
            await engine.abort("v")
            after = engine.stats()
            assert (after.num_waiting, after.kv_blocks_free) == (0, before.kv_blocks_free)
            outputs = await victim.result()
            assert outputs[-1].finish_reason == "abort" and not any(o.token_ids for o in outputs)
            mark = len(log.ends)
            await wait_for(lambda: len(log.ends) > mark + 3)  # the engine goes on with the blocker alone
            await blocker.aclose()
            await wait_for(lambda: drained(engine))
            assert log.with_request("v") == []


async def test_abort_mid_prefill():
    with anyio.fail_after(TIMEOUT):
        engine, log = make_engine(token_budget=8)
        async with engine, anyio.create_task_group() as tg:
            victim = spawn(tg, consume(engine.generate(list(range(1, 201)), request_id="v")))
            await wait_for(lambda: len(log.ends) >= 2)  # two of its 25 chunks done
            mark = len(log.ends)
            assert engine.stats().kv_blocks_free < engine.stats().kv_blocks_total
            await engine.abort("v")
            outputs = await victim.result()
            assert outputs[-1].finish_reason == "abort" and not any(o.token_ids for o in outputs)
            await settle(engine, log, mark)


async def test_abort_while_decoding():
    with anyio.fail_after(TIMEOUT):
        engine, log = make_engine(token_budget=8)
        async with engine:
            stream = engine.generate([3] * 10, SamplingParams(max_tokens=1000), request_id="v")
            for _ in range(3):
                await anext(stream)
            mark = len(log.ends)
            await stream.aclose()  # leaving the stream aborts it
            await settle(engine, log, mark)
            other = engine.generate([4] * 10, SamplingParams(max_tokens=1000), request_id="w")
            await anext(other)
            await anext(other)
            mark = len(log.ends)
            await engine.abort("w")
            assert (await consume(other))[-1].finish_reason == "abort"
            await settle(engine, log, mark)


async def test_abort_in_flight_keeps_the_blocks_until_the_step_returns():
    backend = StallingBackend(stall_at_step=2)
    try:
        with anyio.fail_after(TIMEOUT):
            engine, log = make_engine(backend, token_budget=8)
            async with engine, anyio.create_task_group() as tg:
                victim = spawn(tg, consume(engine.generate(list(range(1, 30)), request_id="v")))
                await wait_for(backend.stalled.is_set)
                await engine.abort("v")
                assert (await victim.result())[-1].finish_reason == "abort"
                held = engine.stats()
                assert held.kv_blocks_free < held.kv_blocks_total  # the executing step still uses them
                backend.release.set()
                await settle(engine, log, mark=1)
                assert len(backend.batches) == 2
    finally:
        backend.release.set()


async def test_abort_while_preempted():
    with anyio.fail_after(TIMEOUT):
        engine, log = make_engine(num_kv_blocks=8, token_budget=8)
        async with engine, anyio.create_task_group() as tg:
            first = spawn(tg, consume(engine.generate([1] * 4, SamplingParams(max_tokens=24))))
            # the victim arrives second, so it is the one preempted (asyncio starts tasks in order, trio not)
            await wait_for(lambda: engine.stats().num_running + engine.stats().num_waiting == 1)
            victim = spawn(tg, consume(engine.generate([2] * 4, SamplingParams(max_tokens=24), request_id="v")))
            await wait_for(lambda: engine.stats().num_preemptions >= 1 and engine.stats().num_waiting == 1)
            mark = len(log.ends)
            assert log.with_request("v")  # it ran before it was preempted
            await engine.abort("v")
            assert engine.stats().num_waiting == 0
            assert (await victim.result())[-1].finish_reason == "abort"
            assert (await first.result())[-1].finish_reason == "length"
            assert log.with_request("v", since=mark) == []
            assert drained(engine)
