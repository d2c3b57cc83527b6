"""Engines over FakeBackend, for tests of the engine itself."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine
from sarathi_sdk.testing import FakeBackend

TIMEOUT = 30.0


def fake_engine(**options) -> Engine:
    backend_options = {k: options.pop(k) for k in ("step_delay", "fail_at_step", "vocab_size") if k in options}
    return Engine(backend=FakeBackend(**backend_options), **options)


async def wait_for(condition, timeout: float = TIMEOUT) -> None:
    """Poll until `condition()` holds, failing the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
def engine_factory():
    return fake_engine
