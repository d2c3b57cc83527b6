"""What the torch backend expects of the pieces plugins can contribute through its registries.

- `sarathi_register_model_architectures`: `register(architecture, factory)`, where
  `factory(hf_config: dict) -> CausalLM` builds the model (on the meta device; the backend
  materialises it and loads the weights) for config.json's `"architectures"[0]`.
- `sarathi_register_attention_backends`: `register(name, factory)`, where
  `factory(config: EngineConfig) -> AttentionBackend`, selected by `Engine(attention_backend=name)`.
- `sarathi_make_sampler(config)` returns a `TokenSampler`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import torch

from sarathi_sdk import DecodeSlot, PrefillChunk, TokenLogprobs

from .context import AttentionContext, ContextSlot
from .model_config import ModelConfig


class AttentionBackend(Protocol):
    """A paged-attention implementation for mixed steps of prefill chunks and decodes."""

    def prepare(self, context: AttentionContext) -> None:
        """Once per step, before the first layer: precompute what every layer shares (indices, masks)
        into `context.backend_state`."""
        ...

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor],
        context: AttentionContext,
        *,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        """Write k/v [T, Hkv, D] into the layer's cache (each [num_blocks, block_size, Hkv, D]) at
        `context.slot_mapping`, then attend q [T, Hq, D] to the positions each token may see
        (causal, and within `sliding_window` when set), scores scaled by `scale` and, with `softcap`
        (Gemma 2), capped to softcap * tanh(score / softcap). Returns [T, Hq, D]."""
        ...


class CausalLM(Protocol):
    """A decoder-only model the torch backend can run."""

    config: ModelConfig
    context: ContextSlot
    """The backend binds each step's AttentionContext here before calling `forward`."""
    packed_modules: Mapping[str, tuple[str, str]]
    """Checkpoint module name -> (fused module name, shard id), e.g. "q_proj" -> ("qkv_proj", "q")."""
    ignored_weights: Sequence[str]
    """Suffixes of checkpoint tensors that are not parameters (e.g. "rotary_emb.inv_freq")."""

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """input_ids, positions [T] -> final hidden states [T, H] (before the final norm)."""
        ...

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [S, H] of the sampling positions -> fp32 logits [S, V]."""
        ...

    def attach(self, kv_caches: Sequence[tuple[torch.Tensor, torch.Tensor]], attention: AttentionBackend) -> None:
        """Give each attention layer its (k, v) cache and the attention backend."""
        ...


class SampledTokens(Protocol):
    token_ids: list[int]
    logprobs: list[TokenLogprobs | None]
    """Per row; None where the request asked for no logprobs."""


class TokenSampler(Protocol):
    """Picks one token per sampling row, on the logits' device."""

    def __call__(self, logits: torch.Tensor, rows: Sequence[PrefillChunk | DecodeSlot]) -> SampledTokens:
        """logits [S, V] fp32 of the S rows (last prefill chunks, then decodes, in batch order); each row
        carries its `sampling_params` and, when a penalty needs it, its `history`."""
        ...
