"""On the real default model, each bad request is refused before admission and the engine keeps
serving: the same greedy answer before and after every refusal (it used to die on a huge logprobs)."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, InvalidRequestError, SamplingParams

TIMEOUT = 120.0
GREEDY = SamplingParams(max_tokens=6, temperature=0, logprobs=20)


async def _drain(stream):
    return [out async for out in stream]


def _bad_requests():
    return [
        (lambda e: e.complete("Hi", SamplingParams(logprobs=1_000_000)), "max_logprobs"),
        (lambda e: e.complete("Hi", SamplingParams(logprobs=21)), "max_logprobs"),
        (lambda e: e.complete("bad \ud800 text", SamplingParams()), "not valid Unicode"),
        (lambda e: e.complete(b"bytes", SamplingParams()), "bytes"),
        (lambda e: e.complete("Hi", SamplingParams(stop_token_ids=[10**6])), "stop_token_ids"),
        (lambda e: e.complete("Hi", SamplingParams(max_tokens=10**6)), "max_model_len"),
        (lambda e: _drain(e.chat([{"role": "user", "content": "\udfff"}], SamplingParams())), "not valid Unicode"),
    ]


async def test_bad_requests_on_the_default_model_leave_it_serving(smollm2_folder):
    engine = Engine(str(smollm2_folder))
    await asyncio.wait_for(engine.start(), TIMEOUT)
    try:
        reference = await asyncio.wait_for(engine.complete("The capital of France is", GREEDY), TIMEOUT)
        assert len(reference.logprobs) == 6 and all(len(lp.top) == 20 for lp in reference.logprobs)
        for make, match in _bad_requests():
            with pytest.raises(InvalidRequestError, match=match):
                await asyncio.wait_for(make(engine), TIMEOUT)
            with pytest.raises(InvalidRequestError, match="temperature"):
                SamplingParams(temperature=float("inf"))
            again = await asyncio.wait_for(engine.complete("The capital of France is", GREEDY), TIMEOUT)
            assert again.token_ids == reference.token_ids
        assert engine.stats().kv_blocks_free == engine.stats().kv_blocks_total
    finally:
        await engine.close()
