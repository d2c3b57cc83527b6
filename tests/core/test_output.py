"""Output processing: stop strings never reach the app, deltas concatenate, streams merge."""

from __future__ import annotations

import pytest

from sarathi_sdk import FinishReason, RequestOutput, TokenLogprobs
from sarathi_sdk.output import OutputProcessor
from tests.conftest import make_request


class CharDetokenizer:
    """Token id i is the character chr(i): enough to test text handling without a model."""

    def add(self, token_ids):
        return "".join(map(chr, token_ids))


def run(text: str, stop: tuple[str, ...]) -> tuple[str, list[str], bool]:
    request = make_request("r", prompt_len=1, max_tokens=1000, stop=stop)
    processor = OutputProcessor(request, CharDetokenizer())
    deltas, stopped = [], False
    for ch in text:
        stopped = processor.add_token(ord(ch))
        request.append_token(ord(ch))
        if stopped:
            request.finish(FinishReason.STOP)
        deltas.append(processor.delta((ord(ch),), None, 1.0 if stopped else None).text)
        if stopped:
            break
    if not stopped:
        request.finish(FinishReason.LENGTH)
        deltas.append(processor.delta((), None, 1.0).text)
    return "".join(deltas), deltas, stopped


@pytest.mark.parametrize(
    "text, stop, expected",
    [
        ("hello world. bye", ("world",), "hello "),
        ("abcSTOPdef", ("STOP", "xyz"), "abc"),
        ("no stop here", ("zzz",), "no stop here"),
        ("aaab", ("ab",), "aa"),
        ("first END second", ("second", "END"), "first "),
    ],
)
def test_stop_strings_cut_exactly(text, stop, expected):
    joined, _, _ = run(text, stop)
    assert joined == expected


def test_text_that_may_start_a_stop_string_is_held_back():
    _, deltas, stopped = run("abcST", ("STOP",))
    assert not stopped
    assert deltas[:5] == ["", "", "", "a", "b"]
    assert "".join(deltas) == "abcST"


def test_consecutive_outputs_concatenate_into_one():
    a = RequestOutput("r", "he", (1,))
    b = RequestOutput("r", "l", (2,), logprobs=(TokenLogprobs(2, -0.5),))
    c = RequestOutput("r", "lo", (3,), finished=True, finish_reason=FinishReason.STOP)
    one = RequestOutput.concat([a, b, c])
    assert (one.text, one.token_ids, one.finished, one.finish_reason) == ("hello", (1, 2, 3), True, "stop")
    assert one.logprobs == (TokenLogprobs(2, -0.5),)
    assert RequestOutput.concat([a, c]).logprobs is None
