"""The GGUF files people have, by name: a model split by llama.cpp's gguf-split into numbered parts
(any part names the whole model; a missing part is named in the error), and an ollama blob (a GGUF
file without the extension). A file that is not GGUF is refused before anything is read."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import sentencepiece

from sarathi_sdk import ConfigError, Engine, SamplingParams
from tests.gguf.tiny_gguf import random_llama, reference_greedy, write_llama_gguf

PARAMS = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def reference(sp_model):
    return random_llama(sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size())


async def greedy(path) -> list[int]:
    async with asyncio.timeout(120):
        async with Engine(str(path), dtype="float32", token_budget=8) as engine:
            out = await engine.complete(engine.tokenizer.encode("def main():"), PARAMS)
    return list(out.token_ids)


def expected(reference, sp_model) -> list[int]:
    prompt = [1, *sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).encode("def main():")]  # BOS first
    return reference_greedy(reference, prompt, 12)


async def test_a_split_model_runs_from_any_of_its_parts(reference, sp_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model, split_max_tensors=8)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(parts) >= 3 and parts[0].name.endswith("-00001-of-%05d.gguf" % len(parts))
    want = expected(reference, sp_model)
    assert await greedy(parts[0]) == want
    assert await greedy(parts[-1]) == want  # a later part names the same model (and its cached folder)
    assert len(list((tmp_path / "cache").iterdir())) == 1


async def test_a_missing_part_is_named(reference, sp_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model, split_max_tensors=8)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    parts[1].unlink()
    with pytest.raises(ConfigError, match=f"missing: {parts[1].name}"):
        await greedy(parts[0])


async def test_an_ollama_blob_runs_as_its_gguf(reference, sp_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model)
    blob = tmp_path / "blobs" / "sha256-4f2c1a"
    blob.parent.mkdir()
    shutil.copy(tmp_path / "tiny.gguf", blob)
    assert await greedy(blob) == expected(reference, sp_model)


async def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    other = tmp_path / "sha256-0000"
    other.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match="is a file but not a GGUF"):
        await greedy(other)
