"""What the engine measures: per-request timings and the engine-wide counters.

`RequestMetrics` (TTFT, TBTs, scheduling delay, ...) rides on a request's final output;
`EngineStats` is what `engine.stats()` returns and what observers receive each step.

Imports only the standard library and `request`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .request import Request


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine between steps."""

    num_waiting: int
    num_running: int
    kv_blocks_total: int
    kv_blocks_free: int
    num_steps: int
    num_preemptions: int
    num_tokens_processed: int
    """Tokens (prefill and decode) executed since start."""
    prefix_cache_hit_rate: float = 0.0
    """Prompt tokens found in the prefix cache over the prompt tokens of the requests admitted so
    far (each request counted once, at its first admission); 0.0 with `enable_prefix_caching` off."""
    num_proposed_tokens: int = 0
    """Speculative tokens proposed and verified in a step (`speculative`); 0 with it off."""
    num_accepted_tokens: int = 0
    """Of those, the tokens verification accepted: each is a token that took no step of its own."""

    @property
    def acceptance_rate(self) -> float:
        """Accepted over proposed speculative tokens; 0.0 before any was proposed."""
        return self.num_accepted_tokens / self.num_proposed_tokens if self.num_proposed_tokens else 0.0


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
