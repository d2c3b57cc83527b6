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
    """One request's newest token at `position`, attending to positions `0 .. position - 1`.

    With speculative decoding it also carries `proposal`: k tokens proposed to follow it, verified in
    the same step as k more query positions `position + 1 ..`, causal among themselves. The backend
    samples a token after each of the 1 + k positions and keeps the proposed tokens up to the first
    one the samples disagree with (`StepOutput.accepted`, see `sarathi_sdk.speculative`).
    """

    request_id: str
    token_id: int
    position: int
    block_table: tuple[int, ...]
    """KV blocks covering positions `0 .. position + len(proposal)`, in order."""
    sampling_params: SamplingParams
    history: TokenHistory | None = None
    allowed_tokens: Any = None
    """As `PrefillChunk.allowed_tokens`."""
    proposal: tuple[int, ...] = ()
    """Speculative tokens proposed to follow `token_id`, at positions `position + 1 ..`."""
    proposal_allowed_tokens: tuple[Any, ...] = ()
    """With `allowed_tokens` and a proposal: the grammar's bitmask row after each proposed token
    (one per proposed token, same layout), for the sample at that token's position."""

    @property
    def num_tokens(self) -> int:
        """Query positions this decode runs: its token and the proposed ones."""
        return 1 + len(self.proposal)


@dataclass(frozen=True, slots=True)
class ScheduledBatch:
    """One step: every decode it carries plus prefill chunks, `num_tokens` tokens in all."""

    step_id: int
    prefills: tuple[PrefillChunk, ...] = ()
    decodes: tuple[DecodeSlot, ...] = ()
    num_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "num_tokens",
            sum(slot.num_tokens for slot in self.decodes) + sum(len(chunk.token_ids) for chunk in self.prefills)
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
        """How many tokens this step samples: one per decode position (its token and each proposed one)
        and per last prefill chunk."""
        return sum(slot.num_tokens for slot in self.decodes) + sum(1 for c in self.prefills if c.is_last_chunk)


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """Log-probability of a sampled token and the `top` (token id, logprob) pairs, best first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StepOutput:
    """The tokens one step sampled: one per decode and per prefill whose last chunk ran, after a
    decode's accepted proposed tokens."""

    step_id: int
    sampled: Mapping[str, int]
    """request_id -> sampled token id."""
    logprobs: Mapping[str, TokenLogprobs] = field(default_factory=dict)
    """request_id -> logprobs, for requests that asked for them."""
    accepted: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """request_id -> the leading tokens of its decode's `proposal` that verification accepted; the
    request's new tokens are these, then `sampled`. Absent: none (or no proposal)."""
    accepted_logprobs: Mapping[str, tuple[TokenLogprobs, ...]] = field(default_factory=dict)
    """request_id -> logprobs of its accepted tokens, for requests that asked for logprobs."""
    failed: Mapping[str, str] = field(default_factory=dict)
    """request_id -> why no token could be sampled for it (its own sampling failed). That request
    ends with `RequestError`; the step and every other request go on."""

    def new_tokens(self, request_id: str) -> tuple[int, ...]:
        """The request's tokens from this step, in order: accepted proposed tokens, then the sampled one."""
        return self.accepted.get(request_id, ()) + (self.sampled[request_id],)
