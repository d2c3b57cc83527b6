"""Writes small Llama, Qwen and Gemma GGUF files the way llama.cpp's converter does, for tests of our
converter.

A random `LlamaForCausalLM` from transformers (the reference) is written with gguf's `GGUFWriter`:
llama.cpp's tensor names, its Q/K row permutation (each head's rows reordered from rotate-half to
interleaved pairs), a chosen quantization per tensor, and a sentencepiece vocabulary with scores and
token types, as `convert_hf_to_gguf.py` stores Llama 2's. Converting such a file back must give the
reference model again. Gemma files follow its `Gemma2Model` / `Gemma3Model`: the norms' own names, 1
added to every norm weight, no permutation, and the metadata each writes (`_add_gemma_metadata`).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import sentencepiece
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from tests.gguf.kquants import quantize_k, quantize_q6_k

LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
}
GEMMA_LAYER_NAMES = {
    **LAYER_NAMES,
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}
CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"


def random_llama(vocab_size: int, tie: bool = False, hidden_size: int = 64, intermediate_size: int = 96,
                 rope_parameters: dict | None = None) -> LlamaForCausalLM:
    """Two layers, 4 query and 2 KV heads. K-quant files need the input sizes to be multiples of 256."""
    torch.manual_seed(0)
    config = LlamaConfig(
        rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": 50000.0},
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
        tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def random_qwen2(vocab_size: int) -> Qwen2ForCausalLM:
    """Two layers, 4 query and 2 KV heads, biases on Q, K and V."""
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=50000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, use_sliding_window=False,
    )
    return Qwen2ForCausalLM(config).eval()


def random_qwen3(vocab_size: int) -> Qwen3ForCausalLM:
    """Two layers, 4 query and 2 KV heads of 32 dims (hidden / heads is 16), Q and K normalized."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=50000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    )
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():  # norms of ones would hide a norm read from the wrong place
        for name, parameter in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                parameter.uniform_(0.5, 1.5)
    return model


def random_gemma(architecture: str, vocab_size: int, hidden_size: int = 64, intermediate_size: int = 96):
    """A Gemma 2 (3 layers: 0 and 2 windowed, scores and logits capped low enough to bite) or Gemma 3 (6
    layers: 0-4 windowed; the sixth's RoPE of another base, linearly scaled) with windows of 8 tokens,
    4 query and 2 KV heads, weights as `gemma_weights_that_vary` sets them."""
    torch.manual_seed(0)
    shape = dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
                 query_pre_attn_scalar=hidden_size // 4, sliding_window=8, max_position_embeddings=256,
                 rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.1)
    if architecture == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(num_hidden_layers=3, attn_logit_softcapping=3.0,
                                               final_logit_softcapping=5.0, **shape))
    else:
        rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 100000.0}}
        model = Gemma3ForCausalLM(Gemma3TextConfig(num_hidden_layers=6, rope_parameters=rope, **shape))
    gemma_weights_that_vary(model)
    return model.eval()


def gemma_weights_that_vary(model) -> None:
    """Norm offsets at random, and small embeddings: transformers starts the offsets at 0 (which would
    hide the 1 the converter adds), and with its embeddings (scaled by sqrt(hidden_size), tied to the
    head) each greedy token is the one before it again; with these a tiny Gemma's 16 greedy tokens are
    8-16 distinct ones, and its fp32 logits stay within 1e-5 (relative) of fp64's (larger offsets
    made them 5e-4 apart)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.normal_(0.0, 0.5)
            elif name.endswith("embed_tokens.weight"):
                parameter.normal_(0.0, 0.01)


def llama3_rope_factors(config) -> np.ndarray | None:
    """The `rope_freqs` tensor llama.cpp's converter writes for a Llama 3.1 config (a divisor per
    frequency), or None for any other rope."""
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type") != "llama3":
        return None
    dim = config.hidden_size // config.num_attention_heads
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    original = rope["original_max_position_embeddings"]
    low, high, factor = rope["low_freq_factor"], rope["high_freq_factor"], rope["factor"]
    factors = []
    for freq in freqs:
        wavelength = 2 * np.pi / freq
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def permute_for_gguf(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """llama.cpp's `permute`: per head, rows (2, head_dim/2) -> (head_dim/2, 2)."""
    return weight.reshape(num_heads, 2, weight.shape[0] // num_heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape
    )


def write_llama_gguf(
    path: Path,
    model: LlamaForCausalLM,
    sp_model: Path,
    quant: dict[str, gguf.GGMLQuantizationType] | None = None,
    architecture: str = "llama",
    byte_level_pre: str | None = None,
    split_max_tensors: int = 0,
) -> None:
    """Write `model` with the vocabulary of `sp_model`; `quant` maps GGUF names to a type (F32 else).
    `byte_level_pre` labels the vocabulary byte-level BPE with that pre-tokenizer instead (for files
    the converter must refuse)."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), architecture, split_max_tensors=split_max_tensors)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if architecture.startswith("gemma"):
        _add_gemma_metadata(writer, config, architecture)
    else:
        writer.add_rope_freq_base(float((getattr(config, "rope_parameters", None) or {}).get("rope_theta", 50000.0)))
        writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    _add_sentencepiece_vocab(writer, sp_model, byte_level_pre)
    writer.add_chat_template(CHAT_TEMPLATE)
    if (factors := llama3_rope_factors(config)) is not None:
        writer.add_tensor("rope_freqs.weight", factors)
    for name, array in gguf_tensors(model, permute=architecture == "llama", gemma=architecture.startswith("gemma")):
        qtype = (quant or {}).get(name, gguf.GGMLQuantizationType.F32)
        if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, array)
        elif qtype in (gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q5_K):
            bits = 4 if qtype == gguf.GGMLQuantizationType.Q4_K else 5
            writer.add_tensor(name, quantize_k(array, bits), raw_dtype=qtype)
        elif qtype == gguf.GGMLQuantizationType.Q6_K:
            writer.add_tensor(name, quantize_q6_k(array), raw_dtype=qtype)
        else:
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_gemma_metadata(writer: gguf.GGUFWriter, config, architecture: str) -> None:
    """What the converter writes beside the shapes: Gemma 2 its caps and window, no RoPE key at all
    (llama.cpp takes base 10000); Gemma 3 the full-attention layers' base and scaling, the windowed
    layers' base, and the window."""
    writer.add_sliding_window(config.sliding_window)
    if architecture == "gemma2":
        writer.add_float32(f"{architecture}.attn_logit_softcapping", config.attn_logit_softcapping)
        writer.add_float32(f"{architecture}.final_logit_softcapping", config.final_logit_softcapping)
        return
    full, local = config.rope_parameters["full_attention"], config.rope_parameters["sliding_attention"]
    writer.add_rope_freq_base(full["rope_theta"])
    writer.add_float32(f"{architecture}.rope.freq_base_swa", local["rope_theta"])
    if full["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(full["factor"])


def gguf_tensors(model, permute: bool = True, gemma: bool = False):
    """(GGUF name, fp32 array as llama.cpp stores it) of every tensor of `model`; its converter permutes
    the Q and K rows of `llama` files only (a `qwen2` file keeps them), and stores Gemma's norm weights
    plus 1."""
    config = model.config
    names = GEMMA_LAYER_NAMES if gemma else LAYER_NAMES
    for name, tensor in model.state_dict().items():
        array = tensor.float().numpy()
        if name == "model.embed_tokens.weight":
            yield "token_embd.weight", array
        elif name == "model.norm.weight":
            yield "output_norm.weight", array + 1 if gemma else array
        elif name == "lm_head.weight":
            if not config.tie_word_embeddings:
                yield "output.weight", array
        else:
            _, _, layer, rest = name.split(".", 3)
            module, suffix = rest.rsplit(".", 1)
            if permute and module == "self_attn.q_proj":
                array = permute_for_gguf(array, config.num_attention_heads)
            elif permute and module == "self_attn.k_proj":
                array = permute_for_gguf(array, config.num_key_value_heads)
            if gemma and module.endswith("norm"):
                array = array + 1
            yield f"blk.{layer}.{names[module]}.{suffix}", array


def _add_sentencepiece_vocab(writer: gguf.GGUFWriter, sp_model: Path, pre: str | None) -> None:
    sp = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2" if pre else "llama")
    if pre:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    writer.add_add_bos_token(True)


def reference_greedy(model, prompt_ids: list[int], count: int) -> list[int]:
    """The transformers model's `count` greedy tokens after the prompt (no early stop at EOS)."""
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=count, min_new_tokens=count,
                             do_sample=False)
    return out[0, len(prompt_ids):].tolist()
