"""`token_bytes()`: each token's bytes, what a grammar engine matches against. Joined over a text's
tokens they give the text back (sentencepiece's leading "▁" aside), for byte-level BPE (SmolLM2's
tokenizer.json), for sentencepiece, and for the tokenizer.json a GGUF file with a sentencepiece
vocabulary gets ("▁" and byte fallback); special tokens are empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarathi_models.resolve import resolve_model
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf
from tests.tokenizers.conftest import make_tokenizer

TEXTS = ["def main():\n    return {\"a\": [1, 2]}", "Grüße, 世界 🎉 — tabs\tand  spaces", " leading space"]


@pytest.fixture(scope="module")
def sp_json_tokenizer(sp_folder: Path, sp_tokenizer, tmp_path_factory: pytest.TempPathFactory):
    """The tokenizer.json the GGUF reader writes for a file with a sentencepiece vocabulary."""
    folder = tmp_path_factory.mktemp("sp-json")
    write_llama_gguf(folder / "tiny.gguf", random_llama(len(sp_tokenizer.token_bytes())), sp_folder / "tokenizer.model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SARATHI_CACHE_DIR", str(folder / "cache"))
        return make_tokenizer(Path(resolve_model(str(folder / "tiny.gguf"))))


def joined(tokenizer, text: str) -> str:
    table = tokenizer.token_bytes()
    return b"".join(table[i] for i in tokenizer.encode(text, add_special_tokens=False)).decode("utf-8")


@pytest.mark.parametrize("text", TEXTS)
def test_byte_level_tokens_join_into_the_text(smollm2_tokenizer, text):
    assert joined(smollm2_tokenizer, text) == text


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("which", ["sp_tokenizer", "sp_json_tokenizer"])
def test_sentencepiece_tokens_join_into_the_text(request, which, text):
    tokenizer = request.getfixturevalue(which)
    assert joined(tokenizer, text) in (text, " " + text)  # the dummy prefix a sentencepiece model adds


@pytest.mark.parametrize("which", ["smollm2_tokenizer", "sp_tokenizer", "sp_json_tokenizer"])
def test_special_tokens_are_empty_and_the_table_covers_the_vocabulary(request, which):
    tokenizer = request.getfixturevalue(which)
    table = tokenizer.token_bytes()
    for token in tokenizer.eos_token_ids:
        assert table[token] == b""
    assert max(tokenizer.encode("".join(TEXTS), add_special_tokens=False)) < len(table)
