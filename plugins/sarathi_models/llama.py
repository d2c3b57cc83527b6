"""Llama-family decoder (Llama 2/3, Mistral, Qwen2/3, Phi-3): embedding, RoPE, GQA attention, SwiGLU, LM head.

Module names mirror the Hugging Face checkpoints (`model.layers.N.self_attn...`) so weights load by
name; q/k/v and gate/up are fused (`packed_modules` maps the checkpoint names onto them). The forward
takes one flat step, `input_ids` and `positions` [T], mixing prefill chunks and decodes; the attention
layers read the step's paged-cache layout from `context` (a `ContextSlot`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .context import ContextSlot
from .decode_stack import build_decode_stack, takes_decode_stack
from .layers import Embedding, GemmaRMSNorm, Linear, MergedLinear, RMSNorm, gelu_tanh_and_mul, silu_and_mul
from .model_config import ModelConfig
from .protocols import AttentionBackend
from .quant import QUANTIZED_MAX_ROWS, PackedWeight, QuantizedWeight, prefill_pass, takes_quantized_kernel
from .rope import RotaryEmbedding, apply_rotary


class LlamaAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int, context: ContextSlot) -> None:
        super().__init__()
        d = config.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, d
        self.qkv_proj = MergedLinear(
            config.hidden_size,
            [("q", config.num_heads * d), ("k", config.num_kv_heads * d), ("v", config.num_kv_heads * d)],
            bias=config.qkv_bias,
        )
        self.o_proj = Linear(config.num_heads * d, config.hidden_size, bias=config.o_bias)
        # Qwen3, Gemma 3: each head's query and key normalized over D (weights [D]) before the rotary embedding
        norm = GemmaRMSNorm if config.gemma_norms else RMSNorm
        self.q_norm = norm(d, config.rms_norm_eps) if config.qk_norm else None
        self.k_norm = norm(d, config.rms_norm_eps) if config.qk_norm else None
        self.scale = config.attention_scale
        self.softcap = config.attn_logit_softcapping
        self.sliding_window = config.sliding_windows[layer_index]
        self.context = context
        self.kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.attention: AttentionBackend | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        t, d = x.shape[0], self.head_dim
        if self.kv_cache is None or self.attention is None:
            raise RuntimeError("the KV cache is not attached: call backend.start() first")
        q, k, v = self.qkv_proj(x).split(
            [self.num_heads * d, self.num_kv_heads * d, self.num_kv_heads * d], dim=-1
        )  # [T, Hq*D], [T, Hkv*D], [T, Hkv*D]
        if self.q_norm is not None and self.k_norm is not None:
            q = self.q_norm(q.reshape(t * self.num_heads, d))  # [T Hq, D]
            k = self.k_norm(k.reshape(t * self.num_kv_heads, d))  # [T Hkv, D]
        q = apply_rotary(q.reshape(t, self.num_heads, d), cos, sin)  # [T, Hq, D]
        k = apply_rotary(k.reshape(t, self.num_kv_heads, d), cos, sin)  # [T, Hkv, D]
        out = self.attention.forward(
            q, k, v.view(t, self.num_kv_heads, d), self.kv_cache, self.context.current,
            scale=self.scale, sliding_window=self.sliding_window, softcap=self.softcap,
        )  # [T, Hq, D]
        return self.o_proj(out.view(t, self.num_heads * d))  # [T, H]


class LlamaMLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        size = config.intermediate_size
        self.gate_up_proj = MergedLinear(config.hidden_size, [("gate", size), ("up", size)], bias=config.mlp_bias)
        self.down_proj = Linear(size, config.hidden_size, bias=config.mlp_bias)
        self.act_and_mul = gelu_tanh_and_mul if config.hidden_act == "gelu_pytorch_tanh" else silu_and_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_and_mul(self.gate_up_proj(x)))  # [T, H]


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int, context: ContextSlot) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config, layer_index, context)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)  # [T, H]
        return x + self.mlp(self.post_attention_layernorm(x))  # [T, H]


class LlamaModel(nn.Module):
    embedding_class: type[Embedding] = Embedding
    layer_class: type[nn.Module] = LlamaDecoderLayer
    norm_class: type[RMSNorm] = RMSNorm
    """The parts a subclass (Gemma's) swaps in."""

    def __init__(self, config: ModelConfig, context: ContextSlot) -> None:
        super().__init__()
        self.embed_tokens = self.embedding_class(config.vocab_size, config.hidden_size)
        self.rotary_emb = RotaryEmbedding(config.rope, config.head_dim)
        self.layers = nn.ModuleList(self.layer_class(config, i, context) for i in range(config.num_layers))
        self.norm = self.norm_class(config.hidden_size, config.rms_norm_eps)
        self.config, self.context = config, context
        self.decode_stack: Any | None = None
        """Every layer in one C++ call for small decode steps on the CPU, once `attach` built it."""

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.run_layers(self.embed_tokens(input_ids), positions)  # [T, H]

    def run_layers(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [T, H] through every layer this model holds: all of them, or a pipeline stage's
        contiguous range (see `stage`), which starts from the previous stage's hidden states."""
        cos, sin = self.rotary_emb(positions, x.dtype)  # [T, 1, D] each
        context = self.context.current
        if self.decode_stack is not None and takes_decode_stack(context, x):
            return self.decode_stack.run(x, cos, sin, context.slot_mapping, context.decode_block_tables,
                                         context.decode_context_lens)  # [T, H]
        with prefill_pass(context.num_prefill_tokens > 0):
            for layer in self.layers:
                x = layer(x, cos, sin)  # [T, H]
        return x  # [T, H], before the final norm


class LlamaForCausalLM(nn.Module):
    """The model the backend runs; see `protocols.CausalLM` for the contract."""

    packed_modules: Mapping[str, tuple[str, str]] = {
        "q_proj": ("qkv_proj", "q"),
        "k_proj": ("qkv_proj", "k"),
        "v_proj": ("qkv_proj", "v"),
        "gate_proj": ("gate_up_proj", "gate"),
        "up_proj": ("gate_up_proj", "up"),
    }

    model_class: type[nn.Module] = LlamaModel
    """The decoder the head sits on (Gemma's subclass swaps in its own)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.context = ContextSlot()
        self.model: Any = self.model_class(config, self.context)
        self.lm_head = None if config.tie_word_embeddings else Linear(config.hidden_size, config.vocab_size)
        self.tied_head_quantized: QuantizedWeight | None = None
        """The tied LM head (the embedding) quantized, when the loader makes it so."""
        # Older checkpoints store rotary buffers; tied ones may store a copy of the embedding.
        self.ignored_weights: Sequence[str] = ("rotary_emb.inv_freq",) + (
            ("lm_head.weight",) if config.tie_word_embeddings else ()
        )

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, positions)  # [T, H]

    def runs_decodes_apart(self, num_decodes: int) -> bool:
        """Whether the backend should give a mixed step's `num_decodes` decodes to `forward` as a pass of
        their own: when that pass would run on the decode stack (`attach` built one, and the pass is
        small enough for it)."""
        return self.model.decode_stack is not None and num_decodes <= QUANTIZED_MAX_ROWS

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head on the sampling rows only: hidden [S, H] -> logits [S, V] fp32.

        A tied head on the CPU kernels (`PackedWeight`) computes fp32 logits at every row count: no
        rounding to bf16 makes two close logits equal (a bf16 tie once turned the default model's
        "The capital ..." into "L'Étoile ..."), and a request's logits do not depend on how many rows
        its step samples. Other heads round to the model's dtype first, as torch's GEMM returns it."""
        normed = self.model.norm(hidden)  # [S, H]
        if self.lm_head is not None:
            return self.lm_head(normed).float()  # [S, V]
        if isinstance(self.tied_head_quantized, PackedWeight) and normed.device.type == "cpu":
            return self.tied_head_quantized.matmul(normed, float_out=True)  # [S, V]
        if self.tied_head_quantized is not None and takes_quantized_kernel(normed):
            return self.tied_head_quantized.matmul(normed).float()  # [S, V]
        return torch.nn.functional.linear(normed, self.model.embed_tokens.weight).float()  # [S, V]

    def attach(self, kv_caches: Sequence[tuple[torch.Tensor, torch.Tensor]], attention: AttentionBackend) -> None:
        for layer, kv_cache in zip(self.model.layers, kv_caches, strict=True):
            layer.self_attn.kv_cache = kv_cache
            layer.self_attn.attention = attention
        self.model.decode_stack = build_decode_stack(self.config, self.model.layers, attention)

