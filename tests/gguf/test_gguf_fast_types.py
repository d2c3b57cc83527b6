"""GGUF files of the types `gguf_blocks` reads (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K beside Q4_0, Q4_1, Q8_0),
and one mixing types within a layer as llama.cpp's Q4_K_M does: every linear layer runs on the
quantized kernels, and the greedy tokens are the dequantized fp32 model's choice, or within a
near-tie of it, at every step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import pytest
import sentencepiece
import torch
from transformers import AutoModelForCausalLM

from sarathi_models.cpu_ops import kernels
from sarathi_models.gguf import convert_gguf
from sarathi_models.layers import Linear
from sarathi_models.resolve import resolve_model
from tests.gguf.tiny_gguf import gguf_tensors, random_llama, write_llama_gguf
from tests.models.helpers import make_backend

Q = gguf.GGMLQuantizationType
SARATHI = Path(sys.executable).with_name("sarathi")
TYPES = [Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K, "mixed"]
MIXED = {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_K, "ffn_gate": Q.Q4_K,
         "ffn_up": Q.Q5_0, "ffn_down": Q.Q6_K, "token_embd": Q.Q8_0, "output": Q.Q6_K}
"""A Q4_K_M-like file: 4-bit Q and K beside a Q6_K V in one fused projection, gate and up of two types."""


def type_of(name: str, qtype) -> gguf.GGMLQuantizationType:
    return MIXED[name.split(".")[-2]] if qtype == "mixed" else qtype


def name_of(qtype) -> str:
    return qtype if isinstance(qtype, str) else qtype.name
needs_kernels = pytest.mark.skipif(kernels() is None, reason="the fused CPU kernels did not build here")
PROMPT = "def main():\n    return 0"
NEAR_TIE = 0.05
"""How far below the fp32 model's best logit our greedy token's own fp32 logit may be, as a share of
the spread of that step's top logits: int8 activations and bf16 move logits by about that much."""
NEAR_TIE_K = 0.12
"""The same for files with K-quants, whose sub-block scales d x sc the kernels hold in fp16 (up to 2^-11
relative off the file's fp32 product, `gguf_blocks`) in prefill too since it dequantizes the codes:
the Q6_K file's 16th token came out at 0.077 (2026-12-07), every other step and type at 0.05 or less.
Once prompts of 16 tokens or fewer prefilled on bf16 activations instead of int8 (`quant.prefill_pass`,
2026-12-07), the Gemma 2 Q4_K_M-like file's 12th token came out at 0.104 (`test_gemma_gguf`)."""


def near_tie_gaps(reference, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Per generated token [len(tokens)]: how far below the reference's best logit ours is, as a share
    of the spread of that step's top 10 logits (0 where ours is the reference's choice)."""
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logits = reference(ids).logits[0, len(prompt) - 1:-1]  # [n, V]: the reference's view of each step
    top = logits.topk(10, dim=-1).values  # [n, 10]
    ours = logits.gather(1, torch.tensor(tokens)[:, None])[:, 0]  # [n]
    return (top[:, 0] - ours) / (top[:, 0] - top[:, -1])


@pytest.fixture(scope="module")
def files(sp_model, tmp_path_factory):
    """qtype -> (the GGUF file's index folder, which the engine loads the file through; the fp32
    reference on the file's dequantized weights, from `sarathi convert`'s folder)."""
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    model = random_llama(vocab, hidden_size=256, intermediate_size=512)  # head_dim 64, K-quant sized
    out = {}
    for qtype in TYPES:
        folder = tmp_path_factory.mktemp(name_of(qtype))
        quant = {name: type_of(name, qtype) for name, array in gguf_tensors(model) if array.ndim == 2}
        write_llama_gguf(folder / "model.gguf", model, sp_model, quant=quant)
        converted = convert_gguf(folder / "model.gguf", folder / "converted")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SARATHI_CACHE_DIR", str(folder / "cache"))
            index = resolve_model(str(folder / "model.gguf"))
        out[qtype] = index, AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
    return out


@needs_kernels
@pytest.mark.parametrize("qtype", TYPES, ids=[name_of(t) for t in TYPES])
def test_every_linear_layer_takes_the_quantized_kernels(files, qtype):
    folder, _ = files[qtype]
    backend = make_backend(folder, dtype="bfloat16")
    layers = [m for m in backend.model.modules() if isinstance(m, Linear)]
    assert len(layers) == 9  # 2 x (qkv, o, gate_up, down) and the untied LM head
    assert all(type(m.quantized).__name__ == "PackedWeight" for m in layers)
    assert all(m.weight is None and m.prepacked is None for m in layers)  # the codes are the only copy
    assert backend.num_quantized_layers == 9
    code_bits = {m.quantized.codes.shape[2] for m in layers}  # kept at the file's width
    assert code_bits == ({4, 5, 6} if qtype == "mixed" else {{Q.Q4_K: 4, Q.Q6_K: 6}.get(qtype, 5)})


@needs_kernels
@pytest.mark.timeout(300)
@pytest.mark.parametrize("qtype", TYPES, ids=[name_of(t) for t in TYPES])
async def test_greedy_tokens_are_the_fp32_models_choice_or_a_near_tie(files, qtype):
    from sarathi_sdk import Engine, SamplingParams

    folder, reference = files[qtype]
    params = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)
    async with Engine(str(folder), dtype="bfloat16", max_num_seqs=4) as engine:
        prompt = engine.tokenizer.encode(PROMPT)
        out = await engine.complete(prompt, params)
    gap = near_tie_gaps(reference, prompt, list(out.token_ids))
    bound = NEAR_TIE if qtype in (Q.Q5_0, Q.Q5_1) else NEAR_TIE_K
    assert (gap <= bound).all(), gap.tolist()


@needs_kernels
@pytest.mark.timeout(300)
@pytest.mark.parametrize("qtype", TYPES, ids=[name_of(t) for t in TYPES])
def test_sarathi_generate_runs_the_file_and_writes_no_weights(files, qtype, tmp_path):
    gguf_file = files[qtype][0].parent.parent / "model.gguf"  # the index lives in <folder>/cache/<name>
    cache = tmp_path / "cache"
    result = subprocess.run([str(SARATHI), "generate", PROMPT, "--model", str(gguf_file), "--max-tokens", "8",
                             "--temperature", "0"], capture_output=True, text=True, timeout=240, check=False,
                            env=dict(os.environ, SARATHI_CACHE_DIR=str(cache)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    (folder,) = cache.iterdir()
    written = {path.name: path.stat().st_size for path in folder.iterdir()}
    assert set(written) == {"config.json", "generation_config.json", "gguf.json", "tokenizer.json",
                            "tokenizer_config.json"}
    assert sum(written.values()) < gguf_file.stat().st_size / 4  # the tokenizer, not a copy of the weights
