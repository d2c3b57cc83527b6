"""Hypothesis fuzz of requests through a running engine on a tiny real model (the real sampler, so a
field that would fail inside a step is caught): what is accepted completes, what is refused raises
InvalidRequestError before admission, nothing else escapes, and the engine never dies."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("transformers")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sarathi_sdk import Engine, EngineState, InvalidRequestError, SamplingParams  # noqa: E402
from tests.models.helpers import save_tiny  # noqa: E402

TIMEOUT = 30.0
anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=3), st.integers(-(2**70), 2**70))
FIELDS = {
    "max_tokens": st.one_of(st.integers(-2, 6), anything),
    "temperature": st.one_of(st.floats(0, 3), anything),
    "top_p": st.one_of(st.floats(0, 1.2), anything),
    "top_k": st.one_of(st.integers(-2, 2000), anything),
    "min_p": st.one_of(st.floats(-0.5, 1.5), anything),
    "seed": st.one_of(st.integers(-5, 2**65), anything),
    "stop_token_ids": st.one_of(st.lists(st.integers(-2, 1100), max_size=3), anything),
    "logprobs": st.one_of(st.integers(-2, 40), anything),
    "repetition_penalty": st.one_of(st.floats(-1, 3), anything),
    "presence_penalty": st.one_of(st.floats(-3, 3), anything),
    "frequency_penalty": st.one_of(st.floats(-3, 3), anything),
    "ignore_eos": st.one_of(st.booleans(), anything),
}
params_strategy = st.fixed_dictionaries({}, optional=FIELDS)
prompts = st.one_of(st.lists(st.integers(-3, 1100), max_size=40), st.binary(max_size=5), st.text(max_size=5),
                    st.lists(st.floats(), max_size=3), st.none(), st.integers())


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    folder = save_tiny(tmp_path_factory.mktemp("fuzz") / "tiny", "LlamaForCausalLM")
    runner = asyncio.Runner()
    engine = Engine(str(folder), max_model_len=64)
    runner.run(asyncio.wait_for(engine.start(), TIMEOUT))
    yield runner, engine
    runner.run(engine.close())
    runner.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=params_strategy, prompt=prompts)
def test_any_request_completes_or_is_refused(running, fields, prompt):
    runner, engine = running

    async def one() -> None:
        try:
            params = SamplingParams(**fields)
        except InvalidRequestError:
            return
        try:
            out = await asyncio.wait_for(engine.complete(prompt, params), TIMEOUT)
        except InvalidRequestError:
            return
        assert out.finished and 1 <= len(out.token_ids) <= params.max_tokens

    runner.run(one())
    assert engine.state is EngineState.RUNNING
    stats = engine.stats()
    assert (stats.num_running, stats.num_waiting, stats.kv_blocks_free) == (0, 0, stats.kv_blocks_total)
