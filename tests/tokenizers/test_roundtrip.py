"""text -> ids -> text gives the text back exactly, for both tokenizer kinds."""

from __future__ import annotations

import pytest

TEXTS = [
    "Hello world",
    "  two leading spaces, and two trailing  ",
    "tabs\tand\nnew lines\n\n",
    "naïve café, Straße",
    "emoji 😀🎉 and CJK 中文字符 mixed",
    "digits 1234567890 and symbols #$%&*()[]{}",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_sentencepiece_round_trip_is_exact(sp_tokenizer, text):
    ids = sp_tokenizer.encode(text)
    assert sp_tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_json_round_trip_is_exact(smollm2_tokenizer, text):
    ids = smollm2_tokenizer.encode(text)
    assert smollm2_tokenizer.decode(ids) == text
