"""Llama 3.1 GGUF files: llama.cpp's converter stores Llama 3's rope scaling as `rope_freqs`, a divisor
per rotary frequency; the converter finds the `rope_type: llama3` scaling that gives those divisors
back, so the converted model computes what the original does and serves its greedy tokens. Factors no
Llama 3 scaling gives are a ConfigError."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import gguf
import pytest
import sentencepiece
import torch
from transformers import AutoModelForCausalLM

from sarathi_models.gguf import convert_gguf
from sarathi_models.gguf_config import llama3_rope_scaling
from sarathi_sdk import ConfigError, Engine, SamplingParams
from tests.gguf.tiny_gguf import reference_greedy, llama3_rope_factors, random_llama, write_llama_gguf


def llama31(original: int) -> dict:
    return {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": original}


@pytest.mark.parametrize("original", [64, 256])  # one frequency between the bands, then two
def test_a_llama31_file_converts_to_the_same_model(original, sp_model, tmp_path):
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    reference = random_llama(vocab, hidden_size=128, intermediate_size=96, rope_parameters=llama31(original))
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model)
    assert "rope_freqs.weight" in {t.name for t in gguf.GGUFReader(tmp_path / "tiny.gguf").tensors}
    folder = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "converted")
    scaling = json.loads((folder / "config.json").read_text())["rope_scaling"]
    assert scaling["rope_type"] == "llama3" and scaling["factor"] == 8.0
    assert isinstance(scaling["original_max_position_embeddings"], int)  # as config.json has it
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.randint(3, vocab, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("original", [64, 256])
async def test_the_engine_serves_a_llama31_file_with_the_original_greedy_tokens(original, sp_model, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    reference = random_llama(vocab, hidden_size=128, intermediate_size=96, rope_parameters=llama31(original))
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model)
    params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(tmp_path / "tiny.gguf"), dtype="float32", token_budget=8) as engine:
            prompt_ids = engine.tokenizer.encode("def main():\n    return 0")
            out = await engine.complete(prompt_ids, params)
    assert list(out.token_ids) == reference_greedy(reference, prompt_ids, 20)


def test_factors_of_real_llama31_are_found_back():
    """Llama 3.1 8B's own settings: head_dim 128, theta 500000, factor 8, bands 1 and 4, 8192 tokens."""
    config = SimpleNamespace(rope_parameters=llama31(8192), hidden_size=4096, num_attention_heads=32)
    factors = llama3_rope_factors(config)
    scaling = llama3_rope_scaling([float(f) for f in factors], 500000.0, 128, "llama31.gguf")
    assert scaling["factor"] == 8.0
    assert scaling["high_freq_factor"] / scaling["low_freq_factor"] == pytest.approx(4.0, rel=1e-4)
    assert scaling["original_max_position_embeddings"] / scaling["low_freq_factor"] == pytest.approx(8192, rel=1e-4)


def test_factors_no_llama3_scaling_gives_are_refused():
    factors = [1.0, 1.0, 3.0, 1.5, 8.0, 8.0, 8.0, 8.0]  # not monotone: no Llama 3 scaling gives these
    with pytest.raises(ConfigError, match="not Llama 3's rope scaling"):
        llama3_rope_scaling(factors, 500000.0, 16, "odd.gguf")
