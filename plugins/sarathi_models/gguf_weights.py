"""The tensors of a Llama, Qwen2 or Qwen3 GGUF as the Hugging Face model's state dict (numpy, fp32).

Three things separate the two layouts:

- names: llama.cpp's `blk.N.attn_q.weight` is HF's `model.layers.N.self_attn.q_proj.weight`, and so on;
- quantization: every GGUF type the `gguf` package knows (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the K-quants,
  F16, BF16, F32) is dequantized with its `dequantize`, row by row as stored;
- rotary layout: for `llama` files, llama.cpp's converter permutes the rows of the Q and K projections
  so that each head's rotary pairs are adjacent (interleaved rope) instead of split in halves as HF
  computes them. Each head's rows are stored as (half, pair) and read here as (pair, half), which is
  the inverse. `qwen2` and `qwen3` files keep HF's rows (llama.cpp runs them with rotate-half, "neox",
  rope).

An unknown tensor name is a `ConfigError`: silently dropping a tensor would give a model that loads
and talks nonsense.

Imports gguf, numpy, the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile

NOT_WEIGHTS = frozenset({"rope_freqs.weight"})
"""Tensors that are settings, not weights: Llama 3.1's rope frequency factors become config.json's
`rope_scaling` (`gguf_config`)."""
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
}
QUANTIZED_FILE = "quantized.safetensors"
"""Written beside model.safetensors: the file's quantized tensors, as `quantized_state_dict` yields them."""
LAYER_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def hf_state_dict(file: GGUFFile, num_heads: int, num_kv_heads: int) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, fp32 array in HF shape) for every tensor of the file."""
    import gguf

    for tensor in file.tensors:
        if tensor.name in NOT_WEIGHTS:
            continue
        name, kind = hf_name(tensor.name)
        # dequantize returns the rows as stored: GGML's (ne1, ne0) order, which is torch's (out, in).
        array = np.ascontiguousarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if kind == "attn_q" and permuted_rope(file):
            array = unpermute_rope_rows(array, num_heads)
        elif kind == "attn_k" and permuted_rope(file):
            array = unpermute_rope_rows(array, num_kv_heads)
        yield name, array


def hf_name(gguf_name: str) -> tuple[str, str]:
    """The HF name of a GGUF tensor, and its llama.cpp kind (`attn_q`, ...) for layer tensors."""
    if gguf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[gguf_name], gguf_name
    match = LAYER_TENSOR.fullmatch(gguf_name)
    if match is None or match.group(2) not in LAYER_NAMES:
        raise ConfigError(f"GGUF tensor {gguf_name!r} has no place in a LlamaForCausalLM")
    layer, kind, suffix = match.groups()
    return f"model.layers.{layer}.{LAYER_NAMES[kind]}.{suffix}", kind


def permuted_rope(file: GGUFFile) -> bool:
    """Whether llama.cpp's converter permuted the file's Q and K rows (its `llama` architecture)."""
    return file.architecture == "llama"


def unpermute_rope_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation: per head, rows stored as (head_dim/2, 2) go back to
    (2, head_dim/2), i.e. from interleaved rotary pairs to HF's rotate-half layout."""
    rows = weight.shape[0]
    half = rows // num_heads // 2
    # weight: [num_heads * head_dim, in] (a bias: [num_heads * head_dim])
    return weight.reshape(num_heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def quantized_state_dict(file: GGUFFile, num_heads: int, num_kv_heads: int) -> Iterator[tuple[str, np.ndarray]]:
    """The tensors of a type the quantized kernels take (`gguf_blocks.FAST_TYPES`), read from their blocks.

    Per HF weight name `W`: of a 4-bit tensor (Q4_0, Q4_1, Q4_K), `W.q4` uint8 [N, K/2] (the codes of
    columns 2j and 2j+1 in the low and high nibble of byte j), `W.q4_scale` and `W.q4_min` fp16
    [N, K/32], the weight being `scale * q + min` per group of 32 columns; of one on the 8-bit path
    (Q5_0, Q5_1, Q5_K, Q6_K, Q8_0), `W.u8` uint8 [N, K] codes with `W.u8_scale` and `W.u8_min` the same
    way (for Q6_K [N, K/16]: per half group).
    Rows of Q and K are un-permuted like the dequantized weights.
    """
    from .gguf_blocks import FAST_TYPES, fast_blocks

    for tensor in file.tensors:
        if tensor.tensor_type not in FAST_TYPES or tensor.name in NOT_WEIGHTS:
            continue
        name, kind = hf_name(tensor.name)
        blocks = fast_blocks(np.asarray(tensor.data), tensor.tensor_type)
        prefix = "q4" if blocks.bits == 4 else "u8"
        arrays = {prefix: blocks.codes, f"{prefix}_scale": blocks.scale, f"{prefix}_min": blocks.minimum}
        if kind in ("attn_q", "attn_k") and permuted_rope(file):
            heads = num_heads if kind == "attn_q" else num_kv_heads
            arrays = {key: unpermute_rope_rows(a, heads) for key, a in arrays.items()}
        if "q4" in arrays:
            q = arrays["q4"]
            arrays["q4"] = q[:, 0::2] | (q[:, 1::2] << 4)
        for key, array in arrays.items():
            yield f"{name}.{key}", np.ascontiguousarray(array)
