"""`qwen2` and `qwen3` GGUF files: a random transformers Qwen2 (biases on Q, K and V) or Qwen3 (Q and K
normalized per head, head_dim apart from hidden / heads) written as llama.cpp's converter writes it
(Q and K rows not permuted) converts back to the same model and serves its greedy tokens; Qwen2's
byte-level pre-tokenizer splits digits one by one where Llama 3's groups three."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sentencepiece
import torch
from transformers import AutoModelForCausalLM

from sarathi_models.gguf import convert_gguf
from sarathi_models.gguf_file import GGUFFile
from sarathi_models.gguf_tokenizer import build_tokenizer
from sarathi_sdk import Engine, SamplingParams
from tests.gguf.tiny_gguf import reference_greedy, random_qwen2, random_qwen3, write_llama_gguf

PROMPT = "def main():\n    return 0"


BUILDERS = {"qwen2": random_qwen2, "qwen3": random_qwen3}


@pytest.fixture(scope="module", params=["qwen2", "qwen3"])
def tiny_qwen2(request, sp_model, tmp_path_factory):
    """(reference model, its GGUF file, the converted folder), of each architecture."""
    model = BUILDERS[request.param](sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size())
    folder = tmp_path_factory.mktemp(request.param)
    write_llama_gguf(folder / "tiny.gguf", model, sp_model, architecture=request.param)
    return model, folder / "tiny.gguf", convert_gguf(folder / "tiny.gguf", folder / "converted")


def test_a_qwen_file_converts_to_the_same_model(tiny_qwen2):
    reference, _, folder = tiny_qwen2
    config = json.loads((folder / "config.json").read_text())
    architecture = type(reference).__name__
    assert config["architectures"] == [architecture] and config["use_sliding_window"] is False
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(converted).__name__ == architecture
    for name, tensor in reference.state_dict().items():
        assert torch.equal(converted.state_dict()[name], tensor), name
    ids = torch.randint(3, reference.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, reference(ids).logits)


async def test_the_engine_serves_a_qwen_file_with_the_original_greedy_tokens(tiny_qwen2, tmp_path, monkeypatch):
    reference, path, _ = tiny_qwen2
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(path), dtype="float32", token_budget=8) as engine:
            prompt_ids = engine.tokenizer.encode(PROMPT)
            out = await engine.complete(prompt_ids, params)
    assert list(out.token_ids) == reference_greedy(reference, prompt_ids, 20)


@pytest.mark.parametrize(("pre", "digits"), [("qwen2", ["1", "2", "3", "4", "5"]), ("llama-bpe", ["123", "45"])])
def test_qwen2_splits_digits_one_by_one_where_llama3_groups_three(pre, digits):
    metadata = {"general.architecture": "qwen2", "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
                "tokenizer.ggml.tokens": ["a", "b"], "tokenizer.ggml.token_type": [1, 1], "tokenizer.ggml.merges": []}
    tokenizer = build_tokenizer(GGUFFile(path=Path("bpe.gguf"), metadata=metadata, tensors=[]))
    pieces = [piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str("x 12345's")]
    assert pieces == ["x", "Ġ", *digits, "'s"]
