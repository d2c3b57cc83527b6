"""One request's failure on the event-loop side ends only its stream; a raising observer ends nothing."""

from __future__ import annotations

import logging

import anyio
import pytest

from sarathi_sdk import EngineState, RequestError, SamplingParams, hookimpl
from sarathi_sdk.output import OutputProcessor
from tests.engine.conftest import TIMEOUT, fake_engine, gather, reference_tokens

pytestmark = pytest.mark.loops("asyncio", "trio")

PROMPTS = {f"r{i}": [i + 1] * (4 + 6 * i) for i in range(6)}
MAX_TOKENS = 12


class Boom(Exception):
    pass


def fail_for(method_name: str, request_id: str, after: int, monkeypatch) -> None:
    """Make `OutputProcessor.<method_name>` raise for one request from its `after`-th call on."""
    original = getattr(OutputProcessor, method_name)
    calls = {"n": 0}

    def failing(self, *args, **kwargs):
        if self._request.request_id == request_id:
            calls["n"] += 1
            if calls["n"] >= after:
                raise Boom(f"{method_name} broke")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OutputProcessor, method_name, failing)


async def run_all(engine):
    async def consume(request_id):
        tokens = []
        async for out in engine.generate(PROMPTS[request_id], SamplingParams(max_tokens=MAX_TOKENS),
                                         request_id=request_id):
            tokens.extend(out.token_ids)
        return tokens

    results = await gather(*(consume(rid) for rid in PROMPTS), return_exceptions=True)
    return dict(zip(PROMPTS, results))


@pytest.mark.parametrize("method_name, after", [("add_token", 3), ("delta", 1), ("delta", MAX_TOKENS)])
async def test_a_failing_output_processor_ends_only_its_request(method_name, after, monkeypatch):
    """`delta` failing at its last call fails the request on the step that finishes it."""
    fail_for(method_name, "r2", after, monkeypatch)
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(token_budget=16, step_delay=0.001) as engine:
            results = await run_all(engine)
            error = results.pop("r2")
            assert isinstance(error, RequestError) and "r2" in str(error)
            assert isinstance(error.__cause__, Boom)
            assert results == {rid: reference_tokens(PROMPTS[rid], MAX_TOKENS) for rid in results}
            stats = engine.stats()
            assert (stats.num_waiting, stats.num_running, stats.kv_blocks_free) == (0, 0, stats.kv_blocks_total)
            await engine.check_health()
            done = await engine.complete([3, 3], SamplingParams(max_tokens=4))
            assert list(done.token_ids) == reference_tokens([3, 3], 4)


class RaisingObserver:
    def __init__(self):
        self.calls = 0

    @hookimpl
    def sarathi_on_request_added(self, request_id):
        self.calls += 1
        raise RuntimeError("added hook bug")

    @hookimpl
    def sarathi_on_step_end(self, batch, stats):
        self.calls += 1
        raise RuntimeError("step hook bug")

    @hookimpl
    def sarathi_on_request_finished(self, request_id, output):
        self.calls += 1
        raise RuntimeError("finished hook bug")


async def test_raising_observers_are_logged_by_name_and_the_engine_goes_on(caplog):
    observer = RaisingObserver()
    with anyio.fail_after(TIMEOUT):
        with caplog.at_level(logging.ERROR, logger="sarathi_sdk"):
            async with fake_engine(plugins=[observer], token_budget=16) as engine:
                results = await run_all(engine)
                assert engine.state is EngineState.RUNNING
                await engine.check_health()
    assert results == {rid: reference_tokens(PROMPTS[rid], MAX_TOKENS) for rid in PROMPTS}
    assert observer.calls > 2 * len(PROMPTS)
    for hook in ("sarathi_on_request_added", "sarathi_on_step_end", "sarathi_on_request_finished"):
        assert f"RaisingObserver.{hook}" in caplog.text
    assert "hook bug" in caplog.text  # the traceback is logged
