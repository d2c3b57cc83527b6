"""Engines over FakeBackend, for tests of the engine itself."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sarathi_sdk import Engine, EngineConfig, SamplingParams, ScheduledBatch
from sarathi_sdk.batch import PrefillChunk
from sarathi_sdk.testing import FakeBackend

TIMEOUT = 30.0


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


async def wait_for(condition, timeout: float = TIMEOUT) -> None:
    """Poll until `condition()` holds, failing the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


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
