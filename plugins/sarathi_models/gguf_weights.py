"""The tensors of a Llama, Qwen2, Qwen3 or Gemma 2/3 GGUF as the Hugging Face model's state dict
(numpy, fp32).

Four things separate the two layouts:

- names: llama.cpp's `blk.N.attn_q.weight` is HF's `model.layers.N.self_attn.q_proj.weight`, and so on
  (Gemma's four norms a layer have names of their own: its `ffn_norm` is the norm *before* the MLP);
- quantization: every GGUF type the `gguf` package knows (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the K-quants,
  F16, BF16, F32) is dequantized with its `dequantize`, row by row as stored;
- rotary layout: for `llama` files, llama.cpp's converter permutes the rows of the Q and K projections
  so that each head's rotary pairs are adjacent (interleaved rope) instead of split in halves as HF
  computes them. Each head's rows are stored as (half, pair) and read here as (pair, half), which is
  the inverse. `qwen2` and `qwen3` files keep HF's rows (llama.cpp runs them with rotate-half, "neox",
  rope).
- norm offsets: Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w (in fp32),
  so its plain RMSNorm computes the same. Read back, 1 is taken off again.

An unknown tensor name is a `ConfigError`: silently dropping a tensor would give a model that loads
and talks nonsense.

Imports numpy, the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile
from .gguf_tensors import GGUFTensor

if TYPE_CHECKING:
    from .gguf_blocks import FastBlocks

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
ROWS_PER_READ = 4096
"""A quantized tensor is read and turned into the kernels' form this many rows at a time (the default
model's 49,152-row embedding: 2.5 MB of blocks a read instead of 30 MB and its temporaries)."""
GEMMA_LAYER_NAMES = {
    **LAYER_NAMES,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
GEMMA_ARCHITECTURES = ("gemma2", "gemma3")
LAYER_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def hf_state_dict(file: GGUFFile, num_heads: int, num_kv_heads: int) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, fp32 array in HF shape) for every tensor of the file."""
    for tensor in file.tensors:
        if tensor.name not in NOT_WEIGHTS:
            yield dense_weight(file, tensor, num_heads, num_kv_heads)


def dense_weight(file: GGUFFile, tensor: GGUFTensor, num_heads: int, num_kv_heads: int) -> tuple[str, np.ndarray]:
    """(HF name, fp32 array in HF shape) of one tensor of the file, dequantized."""
    name, kind = hf_name(tensor.name, file.architecture)
    # values are the rows as stored: GGML's (ne1, ne0) order, which is torch's (out, in).
    array = np.ascontiguousarray(tensor.values())
    if kind == "attn_q" and permuted_rope(file):
        array = unpermute_rope_rows(array, num_heads)
    elif kind == "attn_k" and permuted_rope(file):
        array = unpermute_rope_rows(array, num_kv_heads)
    elif file.architecture in GEMMA_ARCHITECTURES and name.endswith("norm.weight"):
        array = array - np.float32(1.0)
    return name, array


def hf_name(gguf_name: str, architecture: str) -> tuple[str, str]:
    """The HF name of a GGUF tensor of a file of `architecture`, and its llama.cpp kind (`attn_q`, ...)
    for layer tensors."""
    if gguf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[gguf_name], gguf_name
    names = GEMMA_LAYER_NAMES if architecture in GEMMA_ARCHITECTURES else LAYER_NAMES
    match = LAYER_TENSOR.fullmatch(gguf_name)
    if match is None or match.group(2) not in names:
        raise ConfigError(f"GGUF tensor {gguf_name!r} has no place in a {architecture} model")
    layer, kind, suffix = match.groups()
    return f"model.layers.{layer}.{names[kind]}.{suffix}", kind


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


def fast_reader(file: GGUFFile, tensor: GGUFTensor, num_heads: int,
                num_kv_heads: int) -> Callable[[int, int], FastBlocks]:
    """(start, stop) -> output rows [start, stop) of a tensor of `gguf_blocks.FAST_TYPES` in the kernels'
    form, read from the file when called. A `llama` file's Q and K rows are un-permuted per head, so
    those (small) tensors are read whole once and sliced."""
    from .gguf_blocks import FastBlocks, fast_blocks

    _, kind = hf_name(tensor.name, file.architecture)
    if kind in ("attn_q", "attn_k") and permuted_rope(file):
        whole = fast_weight(file, tensor, num_heads, num_kv_heads)[1]
        return lambda start, stop: FastBlocks(whole.codes[start:stop], whole.bits, whole.scale[start:stop],
                                              whole.minimum[start:stop])
    return lambda start, stop: fast_blocks(tensor.rows(start, stop), tensor.tensor_type)


def fast_weight(file: GGUFFile, tensor: GGUFTensor, num_heads: int, num_kv_heads: int) -> tuple[str, FastBlocks]:
    """(HF name, the kernels' form) of one tensor of a type in `gguf_blocks.FAST_TYPES`, read from its
    blocks; rows of Q and K un-permuted like the dequantized weights."""
    from .gguf_blocks import FastBlocks, fast_blocks

    name, kind = hf_name(tensor.name, file.architecture)
    rows = int(tensor.shape[1])
    blocks: FastBlocks | None = None
    for start in range(0, rows, ROWS_PER_READ):
        stop = min(rows, start + ROWS_PER_READ)
        part = fast_blocks(tensor.rows(start, stop), tensor.tensor_type)  # rows [start, stop)
        if blocks is None:
            blocks = FastBlocks(codes=np.empty((rows, part.codes.shape[1]), np.uint8), bits=part.bits,
                                scale=np.empty((rows, part.scale.shape[1]), np.float16),
                                minimum=np.empty((rows, part.minimum.shape[1]), np.float16))
        blocks.codes[start:stop], blocks.scale[start:stop], blocks.minimum[start:stop] = (
            part.codes, part.scale, part.minimum)
    if blocks is None:
        raise ConfigError(f"GGUF tensor {tensor.name!r} has no rows")
    if kind in ("attn_q", "attn_k") and permuted_rope(file):
        heads = num_heads if kind == "attn_q" else num_kv_heads
        blocks = FastBlocks(codes=unpermute_rope_rows(blocks.codes, heads), bits=blocks.bits,
                            scale=unpermute_rope_rows(blocks.scale, heads),
                            minimum=unpermute_rope_rows(blocks.minimum, heads))
    return name.removesuffix(".weight"), blocks


def quantized_state_dict(file: GGUFFile, num_heads: int, num_kv_heads: int) -> Iterator[tuple[str, np.ndarray]]:
    """The tensors of a type the quantized kernels take (`gguf_blocks.FAST_TYPES`), read from their blocks.

    Per HF weight name `W`: of a 4-bit tensor (Q4_0, Q4_1, Q4_K), `W.q4` uint8 [N, K/2] (the codes of
    columns 2j and 2j+1 in the low and high nibble of byte j), `W.q4_scale` and `W.q4_min` fp16
    [N, K/32], the weight being `scale * q + min` per group of 32 columns; of one on the 8-bit path
    (Q5_0, Q5_1, Q5_K, Q6_K, Q8_0), `W.u8` uint8 [N, K] codes with `W.u8_scale` and `W.u8_min` the same
    way (for Q6_K [N, K/16]: per half group).
    """
    from .gguf_blocks import FAST_TYPES

    for tensor in file.tensors:
        if tensor.tensor_type not in FAST_TYPES or tensor.name in NOT_WEIGHTS:
            continue
        module, blocks = fast_weight(file, tensor, num_heads, num_kv_heads)
        prefix = "q4" if blocks.bits == 4 else "u8"
        codes = blocks.codes[:, 0::2] | (blocks.codes[:, 1::2] << 4) if blocks.bits == 4 else blocks.codes
        arrays = {prefix: codes, f"{prefix}_scale": blocks.scale, f"{prefix}_min": blocks.minimum}
        for key, array in arrays.items():
            yield f"{module}.weight.{key}", np.ascontiguousarray(array)
