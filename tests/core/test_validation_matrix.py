"""Every bad request field is refused before admission with an InvalidRequestError naming the field
and the value, and the engine serves a valid request right after each (FakeBackend here; the real
default model in tests/gguf/test_validation_default_model.py)."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, InvalidRequestError, SamplingParams
from sarathi_sdk.testing import FakeBackend

TIMEOUT = 30.0

BAD_PARAMS = [
    ("max_tokens", 0), ("max_tokens", -1), ("max_tokens", 1.5), ("max_tokens", True), ("max_tokens", "3"),
    ("temperature", -0.1), ("temperature", float("inf")), ("temperature", float("nan")), ("temperature", "1"),
    ("temperature", True), ("temperature", 10**400),
    ("top_p", 0.0), ("top_p", 1.5), ("top_p", float("nan")),
    ("top_k", 0), ("top_k", -2), ("top_k", 1.5),
    ("min_p", -0.1), ("min_p", 1.1), ("min_p", float("nan")),
    ("seed", -1), ("seed", 2**64), ("seed", 1.5), ("seed", "1"),
    ("stop", [""]), ("stop", ["x"] * 65), ("stop", ["y" * 1025]), ("stop", ["\ud800"]), ("stop", [1]),
    ("stop", 5),
    ("stop_token_ids", [-1]), ("stop_token_ids", ["a"]), ("stop_token_ids", [True]), ("stop_token_ids", 3),
    ("logprobs", -1), ("logprobs", 1.5),
    ("repetition_penalty", 0.0), ("repetition_penalty", float("inf")),
    ("presence_penalty", 3.0), ("presence_penalty", float("nan")),
    ("frequency_penalty", -3.0),
    ("ignore_eos", "yes"),
]


@pytest.mark.parametrize("field,value", BAD_PARAMS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_PARAMS])
def test_each_bad_sampling_field_names_itself_and_its_value(field, value):
    with pytest.raises(InvalidRequestError) as info:
        SamplingParams(**{field: value})
    message = str(info.value)
    assert message.startswith(field), message
    assert "got" in message


@pytest.mark.parametrize("field,value", [("stop", ["x"] * 64), ("stop", ["y" * 1024]), ("seed", 2**64 - 1),
                                         ("seed", 0), ("temperature", 0), ("logprobs", 0)])
def test_the_limits_themselves_are_accepted(field, value):
    SamplingParams(**{field: value})


BAD_REQUESTS = [
    ("bytes prompt", b"abc", SamplingParams(), "bytes"),
    ("bytearray prompt", bytearray(b"ab"), SamplingParams(), "bytearray"),
    ("float ids", [1.5, 2.0], SamplingParams(), "list of token ids"),
    ("bool ids", [True], SamplingParams(), "list of token ids"),
    ("empty", [], SamplingParams(), "empty"),
    ("text without tokenizer", "hi", SamplingParams(), "no tokenizer"),
    ("id past vocab", [1, 1000], SamplingParams(), "outside the vocabulary"),
    ("logprobs past max_logprobs", [1, 2], SamplingParams(logprobs=21), "max_logprobs"),
    ("huge logprobs", [1, 2], SamplingParams(logprobs=1_000_000), "max_logprobs"),
    ("stop id past vocab", [1, 2], SamplingParams(stop_token_ids=[1000]), "stop_token_ids"),
    ("too long", [1] * 60, SamplingParams(max_tokens=10), "max_model_len"),
    ("params of the wrong type", [1, 2], {"max_tokens": 3}, "SamplingParams"),
]


async def test_bad_requests_are_refused_and_the_engine_serves_the_next():
    engine = Engine(backend=FakeBackend(vocab_size=1000, max_model_len=64))
    await asyncio.wait_for(engine.start(), TIMEOUT)
    try:
        for name, prompt, params, match in BAD_REQUESTS:
            with pytest.raises(InvalidRequestError, match=match):
                await asyncio.wait_for(engine.complete(prompt, params), TIMEOUT)
            stats = engine.stats()
            assert (stats.num_waiting, stats.num_running) == (0, 0), name
            out = await asyncio.wait_for(engine.complete([5, 6, 7], SamplingParams(max_tokens=3, logprobs=20)),
                                         TIMEOUT)
            assert len(out.token_ids) == 3, name
    finally:
        await engine.close()


async def test_max_logprobs_is_an_engine_option():
    engine = Engine(backend=FakeBackend(vocab_size=1000), max_logprobs=2)
    await asyncio.wait_for(engine.start(), TIMEOUT)
    try:
        with pytest.raises(InvalidRequestError, match=r"at most max_logprobs \(2\), got 3"):
            await asyncio.wait_for(engine.complete([1, 2], SamplingParams(logprobs=3)), TIMEOUT)
    finally:
        await engine.close()
