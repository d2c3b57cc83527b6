"""The batch contract: what a batch policy hands the model backend, and what comes back.

A step is one `ScheduledBatch`: the decodes of running requests plus prefill chunks, flattened by the
backend into one token tensor. These frozen, slotted dataclasses are the only thing a backend sees: no
Request objects, no policy state. A backend that honours them works under any policy.

Imports only the standard library and `sampling`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .sampling import SamplingParams


@dataclass(frozen=True, slots=True)
class TokenHistory:
    """Tokens a request has seen, given to the sampler only when a penalty needs them."""

    prompt_token_ids: tuple[int, ...]
    output_token_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PrefillChunk:
    """`len(token_ids)` prompt tokens at positions `start_pos ...`, attending to the cached positions
    `0 .. start_pos - 1` through `block_table` and causally to each other."""

    request_id: str
    token_ids: tuple[int, ...]
    start_pos: int
    block_table: tuple[int, ...]
    """KV blocks covering positions `0 .. start_pos + len(token_ids) - 1`, in order."""
    is_last_chunk: bool
    """Sample a token from the last position (the chunk ends the prompt)."""
    sampling_params: SamplingParams
    history: TokenHistory | None = None
    allowed_tokens: Any = None
    """With `structured_outputs`, on a last chunk: the tokens the grammar allows, a bitmask row
    (int32 [ceil(V / 32)], see `structured_outputs`); None samples from every token."""


@dataclass(frozen=True, slots=True)
class DecodeSlot:
    """One request's newest token at `position`, attending to positions `0 .. position - 1`."""

    request_id: str
    token_id: int
    position: int
    block_table: tuple[int, ...]
    """KV blocks covering positions `0 .. position`, in order."""
    sampling_params: SamplingParams
    history: TokenHistory | None = None
    allowed_tokens: Any = None
    """As `PrefillChunk.allowed_tokens`."""


@dataclass(frozen=True, slots=True)
class ScheduledBatch:
    """One step: every decode it carries plus prefill chunks, `num_tokens` tokens in all."""

    step_id: int
    prefills: tuple[PrefillChunk, ...] = ()
    decodes: tuple[DecodeSlot, ...] = ()
    num_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "num_tokens", len(self.decodes) + sum(len(chunk.token_ids) for chunk in self.prefills)
        )

    @property
    def is_empty(self) -> bool:
        return not self.prefills and not self.decodes

    @property
    def request_ids(self) -> tuple[str, ...]:
        """Every request in the batch, prefills first."""
        return tuple(c.request_id for c in self.prefills) + tuple(d.request_id for d in self.decodes)

    @property
    def num_sampling(self) -> int:
        """How many tokens this step samples: one per decode and per last prefill chunk."""
        return len(self.decodes) + sum(1 for c in self.prefills if c.is_last_chunk)


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """Log-probability of a sampled token and the `top` (token id, logprob) pairs, best first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StepOutput:
    """The tokens one step sampled: one per decode and per prefill whose last chunk ran."""

    step_id: int
    sampled: Mapping[str, int]
    """request_id -> sampled token id."""
    logprobs: Mapping[str, TokenLogprobs] = field(default_factory=dict)
    """request_id -> logprobs, for requests that asked for them."""
    failed: Mapping[str, str] = field(default_factory=dict)
    """request_id -> why no token could be sampled for it (its own sampling failed). That request
    ends with `RequestError`; the step and every other request go on."""
