"""Request state on the engine side.

`Request` is mutable and lives on the event-loop thread: the policy advances it, the KV manager fills
its block table, the engine records its timings. A batch never carries a Request: `prefill_chunk()` and
`decode_slot()` copy out the frozen contract objects the backend sees. What the user sees of a request
is `output.RequestOutput`, with `metrics.RequestMetrics` on its final delta.

Imports only the standard library, `batch` and `sampling`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .batch import DecodeSlot, PrefillChunk, TokenHistory
from .sampling import SamplingParams


class FinishReason(enum.StrEnum):
    """Why a request ended: compares equal to the plain strings "stop", "length" and "abort"."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


class RequestStatus(enum.Enum):
    """Where a request is: waiting (holding no KV blocks), running (holding blocks) or finished."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Request:
    """One generation request as the engine tracks it.

    Tokens: `prompt_token_ids + output_token_ids`; the first `num_computed_tokens` of them are in the
    KV cache. A request is a decode when everything but its newest token is cached. Preemption by
    recompute sets `num_computed_tokens` back to 0: its next prefill covers prompt and output alike.
    """

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling_params: SamplingParams
    arrival_time: float
    arrival_index: int
    """Order of arrival, the FCFS key and the tie-break of every other order."""
    priority: int = 0
    """Lower runs first under `policy_order="priority"`, as in vLLM."""
    eos_token_ids: frozenset[int] = frozenset()
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    block_table: tuple[int, ...] = ()
    """KV blocks holding positions `0 ..`, in order; owned by the KV-cache manager, which replaces
    the tuple when it grows (once per `block_size` tokens), so every chunk and decode slot shares it
    instead of copying it each step."""
    status: RequestStatus = RequestStatus.WAITING
    finish_reason: FinishReason | None = None
    in_flight: bool = False
    """Part of a batch that is executing now; the policy schedules it again only after `update`."""
    num_preemptions: int = 0
    num_cached_tokens: int = 0
    first_scheduled_time: float | None = None
    proposal: tuple[int, ...] = ()
    """Speculative tokens proposed to follow the newest token (see `sarathi_sdk.proposals`): set
    between steps while the request is a decode, cleared when it advances. A policy verifies up to
    all of them in its next decode (`decode_slot`)."""
    token_times: list[float] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_uncomputed_tokens(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_decode(self) -> bool:
        """Everything but the newest sampled token is in the KV cache."""
        return bool(self.output_token_ids) and self.num_computed_tokens == self.num_tokens - 1

    @property
    def is_finished(self) -> bool:
        return self.status is RequestStatus.FINISHED

    def token_at(self, position: int) -> int:
        prompt_len = len(self.prompt_token_ids)
        if position < prompt_len:
            return self.prompt_token_ids[position]
        return self.output_token_ids[position - prompt_len]

    def prefill_chunk(self, num_tokens: int) -> PrefillChunk:
        """The next `num_tokens` uncomputed tokens as a chunk; its blocks must be allocated already."""
        start = self.num_computed_tokens
        end = start + num_tokens
        prompt_len = len(self.prompt_token_ids)
        if end <= prompt_len:
            token_ids = self.prompt_token_ids[start:end]
        else:
            token_ids = (self.prompt_token_ids + tuple(self.output_token_ids))[start:end]
        return PrefillChunk(
            request_id=self.request_id,
            token_ids=token_ids,
            start_pos=start,
            block_table=self.block_table,
            is_last_chunk=end == self.num_tokens,
            sampling_params=self.sampling_params,
            history=self._history(),
        )

    def decode_slot(self, num_proposed: int = 0) -> DecodeSlot:
        """This request's newest token as a decode, with the first `num_proposed` tokens of its
        `proposal` to verify; the blocks of all those positions must be allocated already."""
        return DecodeSlot(
            request_id=self.request_id,
            token_id=self.output_token_ids[-1],
            position=self.num_tokens - 1,
            block_table=self.block_table,
            sampling_params=self.sampling_params,
            history=self._history(),
            proposal=self.proposal[:num_proposed] if num_proposed else (),
        )

    @property
    def max_proposal_len(self) -> int:
        """Most tokens a proposal may hold: one verification yields at most `len(proposal) + 1`
        tokens, never more than `max_tokens` allows, so it never writes a position decoding without
        speculation would not."""
        return max(0, self.sampling_params.max_tokens - len(self.output_token_ids) - 1)

    def append_token(self, token_id: int) -> FinishReason | None:
        """Record a sampled token; say why the request ends, if it does."""
        self.output_token_ids.append(token_id)
        params = self.sampling_params
        if token_id in params.stop_token_ids or (not params.ignore_eos and token_id in self.eos_token_ids):
            return FinishReason.STOP
        if len(self.output_token_ids) >= params.max_tokens:
            return FinishReason.LENGTH
        return None

    def finish(self, reason: FinishReason) -> None:
        self.status = RequestStatus.FINISHED
        self.finish_reason = reason

    def _history(self) -> TokenHistory | None:
        if not self.sampling_params.needs_output_history:
            return None
        return TokenHistory(self.prompt_token_ids, tuple(self.output_token_ids))
