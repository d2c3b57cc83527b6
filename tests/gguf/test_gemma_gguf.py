"""`gemma2` and `gemma3` GGUF files: a random transformers Gemma 2 (scores and logits soft-capped, every
other layer windowed) or Gemma 3 (Q/K norms, five layers of six windowed with a RoPE base of their own)
written as llama.cpp's converter writes it (norm weights plus 1, Gemma's norm names) converts back to
the same model, and the engine serves its greedy tokens from the file; quantized files run every linear
layer on the quantized kernels and give the dequantized fp32 model's tokens, or a near-tie of them."""

from __future__ import annotations

import asyncio
import json

import gguf
import pytest
import sentencepiece
import torch
from transformers import AutoModelForCausalLM

from sarathi_models.gguf import convert_gguf
from sarathi_models.layers import Linear
from sarathi_models.resolve import resolve_model
from sarathi_sdk import Engine, SamplingParams
from tests.gguf.test_gguf_fast_types import NEAR_TIE_K, near_tie_gaps, needs_kernels, type_of
from tests.gguf.tiny_gguf import gguf_tensors, random_gemma, reference_greedy, write_llama_gguf
from tests.models.helpers import make_backend

Q = gguf.GGMLQuantizationType
ARCHITECTURES = ["gemma2", "gemma3"]
PROMPT = "def main():\n    return 0"
"""Longer than the 8-token window once generation starts, so windowed layers drop keys."""


def _vocab(sp_model) -> int:
    return sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()


@pytest.fixture(scope="module", params=ARCHITECTURES)
def tiny_gemma(request, sp_model, tmp_path_factory):
    """(reference model, its fp32 GGUF file, the converted folder) of each architecture."""
    model = random_gemma(request.param, _vocab(sp_model))
    folder = tmp_path_factory.mktemp(request.param)
    write_llama_gguf(folder / "tiny.gguf", model, sp_model, architecture=request.param)
    return model, folder / "tiny.gguf", convert_gguf(folder / "tiny.gguf", folder / "converted")


def test_a_gemma_file_converts_to_the_same_model(tiny_gemma):
    reference, _, folder = tiny_gemma
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [type(reference).__name__]
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    for key in ("layer_types", "sliding_window", "query_pre_attn_scalar", "attn_logit_softcapping",
                "final_logit_softcapping", "rope_parameters", "hidden_activation"):
        assert getattr(converted.config, key) == getattr(reference.config, key), key
    for name, tensor in reference.state_dict().items():
        if name.endswith("norm.weight"):  # stored as 1 + w in fp32, read back as (1 + w) - 1
            torch.testing.assert_close(converted.state_dict()[name], tensor, atol=1e-6, rtol=0)
        else:
            assert torch.equal(converted.state_dict()[name], tensor), name
    ids = torch.randint(3, reference.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, reference(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.timeout(300)
async def test_the_engine_serves_a_gemma_file_with_the_original_greedy_tokens(tiny_gemma, tmp_path, monkeypatch):
    reference, path, _ = tiny_gemma
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True)
    async with asyncio.timeout(240):
        async with Engine(str(path), dtype="float32", token_budget=8) as engine:
            prompt_ids = engine.tokenizer.encode(PROMPT)
            out = await engine.complete(prompt_ids, params)
    assert len(prompt_ids) > 8
    assert list(out.token_ids) == reference_greedy(reference, prompt_ids, 24)


QUANT_TYPES = [Q.Q8_0, "mixed"]


@pytest.fixture(scope="module")
def quantized_files(sp_model, tmp_path_factory):
    """(architecture, qtype) -> (the file's index folder, the fp32 model on its dequantized weights);
    K-quant-sized models (inputs of 256 and 512)."""
    out = {}
    for architecture in ARCHITECTURES:
        model = random_gemma(architecture, _vocab(sp_model), hidden_size=256, intermediate_size=512)
        for qtype in QUANT_TYPES:
            folder = tmp_path_factory.mktemp(f"{architecture}-{qtype}")
            quant = {name: type_of(name, qtype) for name, array in gguf_tensors(model, gemma=True) if array.ndim == 2}
            write_llama_gguf(folder / "model.gguf", model, sp_model, quant=quant, architecture=architecture)
            converted = convert_gguf(folder / "model.gguf", folder / "converted")
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("SARATHI_CACHE_DIR", str(folder / "cache"))
                index = resolve_model(str(folder / "model.gguf"))
            out[architecture, qtype] = index, AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
    return out


CASES = [(a, q) for a in ARCHITECTURES for q in QUANT_TYPES]
IDS = [f"{a}-{q if isinstance(q, str) else q.name}" for a, q in CASES]


@needs_kernels
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_linear_layer_of_a_quantized_gemma_file_takes_the_quantized_kernels(quantized_files, case):
    backend = make_backend(quantized_files[case][0], dtype="bfloat16")
    layers = [m for m in backend.model.modules() if isinstance(m, Linear)]
    assert len(layers) == 4 * backend.model.config.num_layers  # qkv, o, gate_up, down; the head is tied
    assert all(type(m.quantized).__name__ == "PackedWeight" and m.weight is None for m in layers)
    assert type(backend.model.model.embed_tokens.quantized).__name__ == "PackedWeight"


@needs_kernels
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_quantized_gemma_file_gives_the_fp32_models_greedy_tokens_or_a_near_tie(quantized_files, case):
    folder, reference = quantized_files[case]
    params = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)
    async with asyncio.timeout(240):
        async with Engine(str(folder), dtype="bfloat16", max_num_seqs=4) as engine:
            prompt = engine.tokenizer.encode(PROMPT)
            out = await engine.complete(prompt, params)
    gap = near_tie_gaps(reference, prompt, list(out.token_ids))
    assert (gap <= NEAR_TIE_K).all(), gap.tolist()
