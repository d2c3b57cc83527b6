"""The per-step attention context, and the slot through which attention layers read it.

A step's tokens are one flat tensor: the tokens of every prefill chunk, in batch order, then one token
per decode. `AttentionContext` says where each token's K/V goes in the paged cache and which cached
positions each query may see. The backend builds it once per step and publishes it through the model's
`ContextSlot`, so model forwards stay `(input_ids, positions)`; the attention layers read it from there
and hand it to the attention backend (see `protocols.AttentionBackend`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(slots=True)
class AttentionContext:
    """Where the step's tokens live in the paged KV cache. Tensors are on the model's device."""

    block_size: int
    slot_mapping: torch.Tensor
    """[T] int64: flat cache slot (`block * block_size + offset`) of each token's new K/V."""
    num_prefill_tokens: int
    """Tokens `0 .. num_prefill_tokens - 1` belong to prefill chunks, the rest are decodes."""
    prefill_query_starts: tuple[int, ...]
    """Per chunk: index of its first token in the flat step."""
    prefill_query_lens: tuple[int, ...]
    prefill_context_lens: tuple[int, ...]
    """Per chunk: `start_pos + len(chunk)`, the positions its last token sees (itself included)."""
    prefill_block_tables: torch.Tensor
    """[P, max_blocks] int64, padded with block 0 (never read unmasked)."""
    decode_context_lens: torch.Tensor
    """[N] int64: `position + 1` of each decode."""
    decode_block_tables: torch.Tensor
    """[N, max_blocks] int64, padded with block 0."""
    decode_max_context_len: int
    backend_state: Any = field(default=None)
    """Whatever the attention backend's `prepare` computed for this step (masks, gather indices)."""

    @property
    def num_prefills(self) -> int:
        return len(self.prefill_query_starts)

    @property
    def num_decodes(self) -> int:
        return int(self.decode_context_lens.shape[0])


class ContextSlot:
    """Holds the context of the step being run; one per model, shared by its attention layers.

    Not a module global: two engines in one process each have their own model and slot.
    """

    def __init__(self) -> None:
        self._context: AttentionContext | None = None

    @property
    def current(self) -> AttentionContext:
        if self._context is None:
            raise RuntimeError("the model was called outside a step: use `with slot.bind(context)`")
        return self._context

    @contextmanager
    def bind(self, context: AttentionContext) -> Iterator[AttentionContext]:
        self._context = context
        try:
            yield context
        finally:
            self._context = None
