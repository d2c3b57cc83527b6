"""Gemma 2 and Gemma 3 decoders: the Llama layers (`llama`), arranged as Gemma arranges them.

What differs from Llama, each as transformers computes it:
- every RMSNorm multiplies by (1 + w) in fp32 (`GemmaRMSNorm`), and a layer has four: before and after
  attention, before and after the MLP ("sandwich" norms), each output normalized before the residual add;
- the embeddings are multiplied by sqrt(hidden_size), rounded to the model's dtype (`ScaledEmbedding`);
- GeGLU with tanh-approximated GELU, scores scaled by `query_pre_attn_scalar`**-0.5 (`ModelConfig`);
- Gemma 2 caps attention scores and the final logits (c tanh(x / c)) and windows every other layer;
- Gemma 3 normalizes Q and K per head, windows five layers of six, and rotates its windowed layers'
  positions with a base of its own (`local_rope`, 10000), the others' with `rope` (which may scale).

The C++ decode stack (`decode_stack`) runs Llama's layer only, so every Gemma step runs these Python
layers; their linear layers and attention take the same kernels as Llama's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .context import ContextSlot
from .layers import Embedding, GemmaRMSNorm
from .llama import LlamaAttention, LlamaForCausalLM, LlamaMLP, LlamaModel
from .model_config import ModelConfig
from .protocols import AttentionBackend
from .quant import prefill_pass
from .rope import RotaryEmbedding


class ScaledEmbedding(Embedding):
    """Gemma's embedding: rows times sqrt(hidden_size), the factor rounded to the rows' dtype first
    (in bf16, sqrt(2304) = 48.0 becomes 48.0 but sqrt(3072) = 55.43 becomes 55.5, as in transformers)."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__(vocab_size, hidden_size)
        self.scale = hidden_size**0.5

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = super().forward(ids)  # [T, H]
        return rows * torch.tensor(self.scale, dtype=rows.dtype)


class GemmaDecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int, context: ContextSlot) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.rms_norm_eps
        self.input_layernorm = GemmaRMSNorm(hidden, eps)
        self.self_attn = LlamaAttention(config, layer_index, context)
        self.post_attention_layernorm = GemmaRMSNorm(hidden, eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(hidden, eps)
        self.mlp = LlamaMLP(config)
        self.post_feedforward_layernorm = GemmaRMSNorm(hidden, eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin))  # [T, H]
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))  # [T, H]


class GemmaModel(LlamaModel):
    """`LlamaModel` with Gemma's embedding, layers and norm, and a second rotary embedding for the
    windowed layers (Gemma 3's `local_rope`); never a decode stack (see the module docstring)."""

    embedding_class = ScaledEmbedding
    layer_class = GemmaDecoderLayer
    norm_class = GemmaRMSNorm

    def __init__(self, config: ModelConfig, context: ContextSlot) -> None:
        super().__init__(config, context)
        self.local_rotary_emb = RotaryEmbedding(config.local_rope or config.rope, config.head_dim)

    def run_layers(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [T, H] through every layer this model holds (all, or a pipeline stage's range)."""
        rope = self.rotary_emb(positions, x.dtype)  # cos, sin [T, 1, D] each
        local = self.local_rotary_emb(positions, x.dtype) if self.config.local_rope is not None else rope
        with prefill_pass(self.context.current.num_prefill_tokens > 0):
            for layer in self.layers:
                cos, sin = local if layer.self_attn.sliding_window is not None else rope
                x = layer(x, cos, sin)  # [T, H]
        return x  # [T, H], before the final norm


class GemmaForCausalLM(LlamaForCausalLM):
    """Gemma 2 / Gemma 3 (text): Llama's head (tied, as Gemma's checkpoints are, unless a file stores
    `output.weight`) on `GemmaModel`, with Gemma 2's logit cap."""

    model_class = GemmaModel

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Llama's head, then Gemma 2's cap on the fp32 logits: hidden [S, H] -> [S, V]."""
        logits = super().compute_logits(hidden)  # [S, V] fp32
        cap = self.config.final_logit_softcapping
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def attach(self, kv_caches: Sequence[tuple[torch.Tensor, torch.Tensor]], attention: AttentionBackend) -> None:
        for layer, kv_cache in zip(self.model.layers, kv_caches, strict=True):
            layer.self_attn.kv_cache = kv_cache
            layer.self_attn.attention = attention
