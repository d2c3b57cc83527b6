"""Request state on the engine side, and what the user sees of it.

`Request` is mutable and lives on the event-loop thread: the policy advances it, the KV manager fills
its block table, the engine records its timings. A batch never carries a Request: `prefill_chunk()` and
`decode_slot()` copy out the frozen contract objects the backend sees. `RequestOutput` is the
user-facing delta a stream yields.

Imports only the standard library, `batch` and `sampling`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .batch import DecodeSlot, PrefillChunk, TokenHistory, TokenLogprobs
from .sampling import SamplingParams


class FinishReason(enum.StrEnum):
    """Why a request ended: compares equal to the plain strings "stop", "length" and "abort"."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


class RequestStatus(enum.Enum):
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

    def decode_slot(self) -> DecodeSlot:
        """This request's newest token as a decode; its block must be allocated already."""
        return DecodeSlot(
            request_id=self.request_id,
            token_id=self.output_token_ids[-1],
            position=self.num_tokens - 1,
            block_table=self.block_table,
            sampling_params=self.sampling_params,
            history=self._history(),
        )

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


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """Timings of one finished request, in seconds on the `time.perf_counter` clock."""

    arrival_time: float
    first_scheduled_time: float | None
    first_token_time: float | None
    finished_time: float
    scheduling_delay: float | None
    """First scheduled minus arrival: the time spent queued."""
    ttft: float | None
    """Time to first token: first token minus arrival."""
    tbts: tuple[float, ...]
    """Time between consecutive tokens."""
    e2e_latency: float
    num_prompt_tokens: int
    num_cached_tokens: int
    num_generated_tokens: int
    num_preemptions: int

    @classmethod
    def of(cls, request: Request, finished_time: float) -> RequestMetrics:
        times = request.token_times
        first = times[0] if times else None
        scheduled = request.first_scheduled_time
        return cls(
            arrival_time=request.arrival_time,
            first_scheduled_time=scheduled,
            first_token_time=first,
            finished_time=finished_time,
            scheduling_delay=None if scheduled is None else scheduled - request.arrival_time,
            ttft=None if first is None else first - request.arrival_time,
            tbts=tuple(b - a for a, b in zip(times, times[1:])),
            e2e_latency=finished_time - request.arrival_time,
            num_prompt_tokens=len(request.prompt_token_ids),
            num_cached_tokens=request.num_cached_tokens,
            num_generated_tokens=len(request.output_token_ids),
            num_preemptions=request.num_preemptions,
        )


@dataclass(frozen=True, slots=True)
class RequestOutput:
    """What a stream yields: the text and tokens new since the previous output of the same request.

    `metrics` is set on the final output only (`finished` true). `complete()` returns one
    RequestOutput holding the whole result.
    """

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finished: bool = False
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprobs, ...] | None = None
    metrics: RequestMetrics | None = None

    @staticmethod
    def concat(outputs: Sequence[RequestOutput]) -> RequestOutput:
        """Consecutive deltas of one request as one delta, built in one pass (not pairwise, which
        would copy the growing text once per delta)."""
        last = outputs[-1]
        logprobs = None
        if any(o.logprobs is not None for o in outputs):
            logprobs = tuple(lp for o in outputs for lp in o.logprobs or ())
        return RequestOutput(
            request_id=last.request_id,
            text="".join(o.text for o in outputs),
            token_ids=tuple(t for o in outputs for t in o.token_ids),
            finished=last.finished,
            finish_reason=last.finish_reason,
            logprobs=logprobs,
            metrics=last.metrics,
        )
