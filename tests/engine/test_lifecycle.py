"""Lifecycle misuse and bad input get clear typed errors; a failing backend kills the engine cleanly."""

from __future__ import annotations

import anyio
import pytest

from sarathi_sdk import (
    ConfigError,
    Engine,
    EngineDeadError,
    EngineState,
    EngineStateError,
    InvalidRequestError,
    SamplingParams,
)
from sarathi_sdk.testing import FakeBackend
from tests.engine.conftest import TIMEOUT, OverlapCheckingBackend, fake_engine, gather, wait_for

pytestmark = pytest.mark.loops("asyncio", "trio")


def test_unknown_option_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match="did you mean 'token_budget'"):
        Engine(backend=FakeBackend(), token_budgt=5)


async def test_generate_before_start_is_refused():
    engine = fake_engine()
    with anyio.fail_after(TIMEOUT), pytest.raises(EngineStateError, match="async with"):
        await anext(engine.generate([1]))


async def test_closed_engine_cannot_be_reopened():
    engine = fake_engine()
    with anyio.fail_after(TIMEOUT):
        async with engine:
            assert engine.state is EngineState.RUNNING
        assert engine.state is EngineState.CLOSED
        with pytest.raises(EngineStateError, match="make a new Engine"):
            await engine.start()
        with pytest.raises(EngineStateError):
            await engine.complete([1])
        await engine.close()


@pytest.mark.parametrize(
    "prompt, params, match",
    [
        ([], None, "empty"),
        ("text", None, "no tokenizer"),
        ([1, 5000], None, "outside the vocabulary"),
        ([1, -1], None, "outside the vocabulary"),
        ([1.5], None, "string or a list of token ids"),
        ([1], SamplingParams(stop=["x"]), "stop strings need a tokenizer"),
        ([1] * 10, SamplingParams(max_tokens=200), "needs 14 KV blocks; the cache has 8"),
        ([1] * 10, SamplingParams(max_tokens=395), "exceeds max_model_len"),
        ([1], {"max_tokens": 3}, "must be SamplingParams"),
    ],
)
async def test_bad_requests_are_refused_before_admission(prompt, params, match):
    with anyio.fail_after(TIMEOUT):
        async with Engine(backend=FakeBackend(vocab_size=100, max_model_len=400), num_kv_blocks=8) as engine:
            with pytest.raises(InvalidRequestError, match=match):
                await engine.complete(prompt, params)
            stats = engine.stats()
            assert (stats.num_waiting, stats.num_running, stats.kv_blocks_free) == (0, 0, 8)
            assert (await engine.complete([1, 2], SamplingParams(max_tokens=2))).finished


def test_bad_sampling_params_are_invalid_request_errors():
    for bad in ({"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_k": 0}, {"stop": [""]},
                {"logprobs": -1}, {"presence_penalty": 3}, {"stop_token_ids": ["a"]}):
        with pytest.raises(InvalidRequestError):
            SamplingParams(**bad)


async def test_duplicate_request_id_is_refused():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(step_delay=0.01) as engine:
            stream = engine.generate([1], SamplingParams(max_tokens=50), request_id="x")
            await anext(stream)
            with pytest.raises(InvalidRequestError, match="'x'"):
                await engine.complete([2], request_id="x")
            await stream.aclose()


async def test_backend_failure_ends_every_stream_with_engine_dead():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(fail_at_step=3) as engine:
            results = await gather(
                *(engine.complete([i + 1] * 4, SamplingParams(max_tokens=10)) for i in range(3)),
                return_exceptions=True,
            )
            assert all(isinstance(r, EngineDeadError) for r in results)
            assert engine.state is EngineState.DEAD
            with pytest.raises(EngineDeadError):
                await engine.complete([1])
    assert engine.state is EngineState.CLOSED


async def test_pipeline_keeps_several_batches_in_flight_without_sharing_requests():
    backend = OverlapCheckingBackend(step_delay=0.005)
    with anyio.fail_after(TIMEOUT):
        async with Engine(backend=backend, pipeline_parallel_size=2, token_budget=16) as engine:
            results = await gather(
                *(engine.complete([i + 1] * (3 + i), SamplingParams(max_tokens=6)) for i in range(5))
            )
            await wait_for(lambda: engine.stats().kv_blocks_free == engine.stats().kv_blocks_total)
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(token_budget=16) as engine:
            serial = await gather(
                *(engine.complete([i + 1] * (3 + i), SamplingParams(max_tokens=6)) for i in range(5))
            )
    assert [r.token_ids for r in results] == [r.token_ids for r in serial]
    assert backend.max_concurrent == 2  # two batches did execute at once
    assert backend.overlaps == []  # and batches executing together never shared a request


def test_an_unstarted_engine_says_so():
    engine = fake_engine()
    assert engine.tokenizer is None
    with pytest.raises(EngineStateError):
        engine.stats()
    with pytest.raises(EngineStateError):
        engine.plugin_manager
