"""Streamed text deltas concatenate to the full decode and never show half a character."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPLACEMENT = "\ufffd"
SPLIT_CHARACTERS = "emoji 😀🎉👩‍💻 and CJK 中文字符, accents: naïve café"


def stream(tokenizer, prompt_ids, new_ids, chunk=1):
    detokenizer = tokenizer.detokenizer(prompt_ids)
    return [detokenizer.add(new_ids[i : i + chunk]) for i in range(0, len(new_ids), chunk)]


def expected_text(tokenizer, prompt_ids, new_ids):
    """What the generated tokens read as after the prompt: the decode of the whole sequence less the
    prompt's own decode (sentencepiece drops a leading space only at the start of a decode)."""
    whole, prompt = tokenizer.decode(prompt_ids + new_ids), tokenizer.decode(prompt_ids)
    assert whole.startswith(prompt)
    return whole[len(prompt) :]


@pytest.fixture(params=["sentencepiece", "tokenizer.json"])
def tokenizer(request):
    return request.getfixturevalue("sp_tokenizer" if request.param == "sentencepiece" else "smollm2_tokenizer")


def test_multi_byte_characters_really_are_split_across_tokens(tokenizer):
    ids = tokenizer.encode(SPLIT_CHARACTERS, add_special_tokens=False)
    assert any(REPLACEMENT in tokenizer.decode([token]) for token in ids)


@pytest.mark.parametrize("chunk", [1, 3])
def test_deltas_concatenate_to_the_decode_without_a_broken_character(tokenizer, chunk):
    ids = tokenizer.encode(SPLIT_CHARACTERS, add_special_tokens=False)
    deltas = stream(tokenizer, [], ids, chunk)
    assert "".join(deltas) == tokenizer.decode(ids) == SPLIT_CHARACTERS
    assert not any(REPLACEMENT in delta for delta in deltas)
    if chunk == 1:
        assert "" in deltas  # bytes of an unfinished character were held back


def test_text_after_a_prompt_keeps_its_leading_space(tokenizer):
    prompt = tokenizer.encode("Once upon a time")
    new = tokenizer.encode("Once upon a time there was 😀 中文", add_special_tokens=False)[len(prompt) - 1 :]
    deltas = stream(tokenizer, prompt, new)
    assert "".join(deltas) == expected_text(tokenizer, prompt, new)
    assert not any(REPLACEMENT in delta for delta in deltas)


def test_special_tokens_add_no_text(tokenizer):
    ids = tokenizer.encode("done.", add_special_tokens=False) + sorted(tokenizer.eos_token_ids)[:1]
    deltas = stream(tokenizer, [], ids)
    assert "".join(deltas) == "done." and deltas[-1] == ""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("ab cd\n\té中文字😀🎉ß€ü1 2"), max_size=40), chunk=st.integers(1, 4))
def test_any_text_streams_back_exactly(tokenizer, text, chunk):
    prompt = tokenizer.encode("Hi")
    new = tokenizer.encode(text, add_special_tokens=False)
    deltas = stream(tokenizer, prompt, new, chunk)
    assert "".join(deltas) == expected_text(tokenizer, prompt, new)
    assert not any(REPLACEMENT in delta for delta in deltas)
