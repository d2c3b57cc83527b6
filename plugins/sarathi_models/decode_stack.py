"""The CPU fast path for decode steps: every decoder layer in one C++ call (`csrc/decode_stack.cpp`).

A batch-1 decode step of SmolLM2-135M on a 2-core Zen 4 spent about 2.5 ms of its 7 ms outside the
kernels: 30 layers of Python module calls, views and small torch ops. `DecodeStack` runs the same
kernels in the same order from C++, so its result equals the Python layers' bit for bit
(`tests/models/test_decode_stack.py`), and the model takes it for decode-only steps of at most
`QUANTIZED_MAX_ROWS` rows (larger steps run the bf16 GEMM, see `quant`). The step is one OpenMP
parallel region, its kernels split over the region's threads (`csrc/shares.h` says why: one region a
kernel slowed a step 1.7x whenever another thread of the process held an OpenMP team).

A model gets one only when every layer can: the CPU kernels built, the "cpu" attention backend, bf16,
every linear layer packed (`PackedWeight`, as a GGUF Q4/Q8 file or `quantization="int4"` gives) and
without bias, and no Q/K norms (Qwen3's). Otherwise (`None`) the Python layers run, as for every other
step.

Imports torch and this package.
"""

from __future__ import annotations

from typing import Any

import torch

from .context import AttentionContext
from .cpu_attention import CpuAttention
from .cpu_ops import kernels
from .layers import Linear
from .model_config import ModelConfig
from .protocols import AttentionBackend
from .quant import PackedWeight, takes_quantized_kernel


def build_decode_stack(config: ModelConfig, layers: Any, attention: AttentionBackend) -> Any | None:
    """The C++ stack of `layers` (the Llama decoder layers, KV caches attached), or None (see above)."""
    fused = kernels()
    if fused is None or not isinstance(attention, CpuAttention) or config.qk_norm:  # the stack has no Q/K norms
        return None
    tensors, windows = [], []
    for layer in layers:
        attn, mlp = layer.self_attn, layer.mlp
        linears = (attn.qkv_proj, attn.o_proj, mlp.gate_up_proj, mlp.down_proj)
        packed = [_packed(linear) for linear in linears]
        if any(p is None for p in packed) or attn.kv_cache is None:
            return None
        k_cache, v_cache = attn.kv_cache
        if k_cache.dtype != torch.bfloat16 or layer.input_layernorm.weight.dtype != torch.bfloat16:
            return None
        qkv, o, gate_up, down = packed
        tensors.append([
            layer.input_layernorm.weight, qkv.codes, qkv.scales, o.codes, o.scales,
            layer.post_attention_layernorm.weight, gate_up.codes, gate_up.scales, down.codes, down.scales,
            k_cache, v_cache,
        ])
        windows.append(attn.sliding_window or 0)
    return fused.DecodeStack(
        tensors, windows, config.num_heads, config.num_kv_heads, config.head_dim, config.hidden_size,
        config.intermediate_size, config.rms_norm_eps, config.head_dim**-0.5,
    )


def takes_decode_stack(context: AttentionContext, x: torch.Tensor) -> bool:
    """Whether a pass with hidden states x [T, H] runs on the stack: decodes only, on rows the Python
    layers would give the quantized kernels."""
    return context.num_prefill_tokens == 0 and takes_quantized_kernel(x)


def _packed(linear: Linear) -> PackedWeight | None:
    weight = linear.quantized
    return weight if isinstance(weight, PackedWeight) and linear.bias is None else None
