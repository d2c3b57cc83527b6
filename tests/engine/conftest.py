"""Engines over FakeBackend, for tests of the engine itself, and loop-neutral helpers (anyio) for tests that
run under asyncio and trio alike: `@pytest.mark.loops("asyncio", "trio")` (tests/engine/loops.py)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

import anyio
import pytest

from sarathi_sdk import Engine, EngineConfig, SamplingParams, ScheduledBatch
from sarathi_sdk.batch import PrefillChunk
from sarathi_sdk.testing import FakeBackend
from tests.engine import loops

# one async test, one item per event loop: see tests/engine/loops.py
pytest_configure = loops.pytest_configure
pytest_generate_tests = loops.pytest_generate_tests
pytest_pycollect_makeitem = loops.pytest_pycollect_makeitem

TIMEOUT = 30.0
T = TypeVar("T")


def fake_engine(**options) -> Engine:
    backend_options = {k: options.pop(k) for k in ("step_delay", "fail_at_step", "vocab_size") if k in options}
    return Engine(backend=FakeBackend(**backend_options), **options)


class StallingBackend(FakeBackend):
    """FakeBackend whose step `stall_at_step` hangs until `release` is set (or `max_stall` seconds pass)."""

    def __init__(self, stall_at_step: int, max_stall: float = 10.0, **options) -> None:
        super().__init__(**options)
        self.stall_at_step = stall_at_step
        self.max_stall = max_stall
        self.stalled = threading.Event()
        self.release = threading.Event()

    def execute(self, batch):
        if self.num_steps + 1 == self.stall_at_step:
            self.stalled.set()
            self.release.wait(self.max_stall)
        return super().execute(batch)


class OverlapCheckingBackend(FakeBackend):
    """Records, at each step's start, any request already inside a step still executing, and how many
    steps ran at once: what `pipeline_parallel_size` > 1 must never do, and must do."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._lock = threading.Lock()
        self._executing: list[set[str]] = []
        self.overlaps: list[set[str]] = []
        self.max_concurrent = 0

    def execute(self, batch):
        ids = set(batch.request_ids)
        with self._lock:
            self.overlaps += [ids & other for other in self._executing if ids & other]
            self._executing.append(ids)
            self.max_concurrent = max(self.max_concurrent, len(self._executing))
        try:
            return super().execute(batch)
        finally:
            with self._lock:
                self._executing.remove(ids)


def drained(engine) -> bool:
    """Nothing waiting or running and every KV block free: where an engine must be after its requests end."""
    stats = engine.stats()
    return (stats.num_waiting, stats.num_running) == (0, 0) and stats.kv_blocks_free == stats.kv_blocks_total


async def wait_for(condition, timeout: float = TIMEOUT) -> None:
    """Poll until `condition()` holds, failing the test after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.001)


class Spawned(Generic[T]):
    """A coroutine running as a task of a task group, its result or error kept for `result()` (so an
    error does not cancel the group), inside a cancel scope of its own that `cancel()` cancels."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._scope = anyio.CancelScope()
        self._value: Any = None
        self._error: BaseException | None = None

    async def _run(self, awaitable: Awaitable[T]) -> None:
        try:
            with self._scope:
                self._value = await awaitable
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()

    def cancel(self) -> None:
        self._scope.cancel()

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` ended it before it returned."""
        return self._done.is_set() and self._scope.cancelled_caught

    async def wait(self) -> None:
        """Until it has ended, however it ended."""
        await self._done.wait()

    async def result(self) -> T:
        """Its return value once it has returned; its error, raised here, once it failed."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._scope.cancelled_caught:
            raise RuntimeError("the task was cancelled: it has no result")
        return self._value


def spawn(task_group: anyio.abc.TaskGroup, awaitable: Awaitable[T]) -> Spawned[T]:
    """Start `awaitable` in `task_group` (as `asyncio.create_task` would, loop-neutral)."""
    spawned: Spawned[T] = Spawned()
    task_group.start_soon(spawned._run, awaitable)
    return spawned


async def gather(*awaitables: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
    """Run the awaitables concurrently in a task group; their results in order (as `asyncio.gather`).
    With `return_exceptions`, an awaitable's Exception is its result; without, the first one raised
    cancels the others and is raised here."""
    results: list[Any] = [None] * len(awaitables)

    async def run(index: int, awaitable: Awaitable[Any]) -> None:
        try:
            results[index] = await awaitable
        except Exception as exc:
            if not return_exceptions:
                raise
            results[index] = exc

    try:
        async with anyio.create_task_group() as task_group:
            for index, awaitable in enumerate(awaitables):
                task_group.start_soon(run, index, awaitable)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    return results


def reference_tokens(prompt: list[int], max_tokens: int, vocab_size: int = 1000) -> list[int]:
    """What FakeBackend generates for a prompt run alone, one token at a time."""
    backend = FakeBackend(vocab_size=vocab_size)
    config = EngineConfig(block_size=len(prompt) + max_tokens)
    backend.start(config, 1)
    tokens = list(prompt)
    params = SamplingParams(max_tokens=max_tokens)
    for step in range(max_tokens):
        chunk = PrefillChunk("r", tuple(tokens), 0, (0,), True, params)
        tokens.append(backend.execute(ScheduledBatch(step, prefills=(chunk,))).sampled["r"])
    return tokens[len(prompt):]


@pytest.fixture
def engine_factory():
    return fake_engine
