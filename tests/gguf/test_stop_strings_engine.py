"""Stop strings through the engine on the real model: cut exactly, never streamed, even across tokens."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.gguf.smollm2 import PARIS_QUESTION

ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def stream_answer(smollm2_folder):
    """stream_answer(stop) -> (text deltas, final output) of the greedy answer to the France question."""

    def run(stop: list[str]):
        async def main():
            async with asyncio.timeout(120):
                async with Engine(str(smollm2_folder)) as engine:
                    params = SamplingParams(max_tokens=16, temperature=0, stop=stop)
                    messages = [{"role": "user", "content": PARIS_QUESTION}]
                    return [o async for o in engine.chat(messages, params)]

        outputs = asyncio.run(main())
        return [o.text for o in outputs], outputs[-1]

    return run


def test_without_stop_strings_the_answer_is_whole(stream_answer):
    deltas, final = stream_answer([])
    assert "".join(deltas) == ANSWER and final.finish_reason == "stop"


@pytest.mark.parametrize(
    "stop, expected",
    [
        (["Paris"], "The capital of France is "),
        (["France is"], "The capital of "),
        (["Paris.", "capital"], "The "),
        ([" Paris."], "The capital of France is"),
    ],
)
def test_stop_string_is_cut_exactly_and_never_streamed(stream_answer, stop, expected):
    deltas, final = stream_answer(stop)
    assert "".join(deltas) == expected
    assert final.finish_reason == "stop" and final.finished
    assert not any(s in "".join(deltas) for s in stop)
