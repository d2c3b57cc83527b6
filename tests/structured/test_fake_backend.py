"""Structured outputs over `FakeBackend` (which honours grammar masks) and a byte vocabulary: the engine's
side alone, fast. Every constrained output follows its grammar, a grammar that ends finishes "stop",
and neither an engine's death nor its close leaves a matcher behind."""

from __future__ import annotations

import asyncio
import re

import pytest

from sarathi_sdk import Engine, EngineDeadError, SamplingParams, StructuredOutputsParams
from sarathi_sdk.testing import FakeBackend
from tests.structured.recorder import Recorder

VOCAB = [b""] + [bytes([i]) for i in range(1, 256)]
"""Token 0 ends a sequence; token i is byte i."""


def text_of(token_ids) -> str:
    return bytes(t for t in token_ids if t).decode("latin-1")


async def test_outputs_follow_their_grammar_and_end_with_stop():
    grammars = Recorder(lambda: VOCAB, {0})
    params = SamplingParams(max_tokens=40, structured_outputs=StructuredOutputsParams(regex=r"[a-f]{3}-[0-9]{2}"))
    async with asyncio.timeout(60):
        async with Engine(backend=FakeBackend(vocab_size=256), plugins=[grammars], token_budget=8) as engine:
            outputs = await asyncio.gather(*(engine.complete([1 + i, 2, 3, 4, 5, 6, 7, 8, 9], params) for i in range(6)))
            free = await engine.complete([9, 9], SamplingParams(max_tokens=5, ignore_eos=True))
    for out in outputs:
        assert out.finish_reason == "stop" and re.fullmatch(r"[a-f]{3}-[0-9]{2}", text_of(out.token_ids))
    assert len(free.token_ids) == 5
    assert grammars.live_matchers() == 0


async def test_an_engine_that_dies_leaves_no_matcher():
    grammars = Recorder(lambda: VOCAB, {0})
    params = SamplingParams(max_tokens=40, structured_outputs=StructuredOutputsParams(json_object=True))
    async with asyncio.timeout(60):
        async with Engine(backend=FakeBackend(vocab_size=256, fail_at_step=3), plugins=[grammars]) as engine:
            with pytest.raises(EngineDeadError):
                await asyncio.gather(*(engine.complete([5, 6, 7], params) for _ in range(3)))
    assert grammars.matchers and grammars.live_matchers() == 0
