"""What a benchmark run records: one `RequestRecord` per request and one `StepRecord` per step.

Times are seconds on one clock whose zero is the start of the run (the first request may arrive at
0). Both records are plain data so the metric arithmetic (`report.py`) is tested on hand-made
timelines, and the `hf` baseline, which has no engine steps of ours, fills the same records.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import RequestMetrics, RequestOutput
from ..batch import ScheduledBatch


def final_metrics(output: RequestOutput) -> RequestMetrics:
    """The metrics of a finished request (`engine.complete()` returns its final output)."""
    if output.metrics is None:
        raise ValueError(f"request {output.request_id} has no metrics: not its final output")
    return output.metrics


@dataclass(frozen=True, slots=True)
class RequestRecord:
    arrival: float
    scheduled: float
    """When its first prefill chunk was scheduled: arrival to here is the scheduling delay."""
    token_times: tuple[float, ...]
    """When each output token reached the client, the first one included."""
    finished: float
    prompt_len: int
    num_preemptions: int = 0
    num_cached_tokens: int = 0
    """Prompt tokens the engine's prefix cache held when the request started."""

    @property
    def output_len(self) -> int:
        return len(self.token_times)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step the model executed: its wall time and its work."""

    start: float
    end: float
    prefill_tokens: int
    decodes: int
    num_sampled: int
    """Rows the LM head runs on: one per decode and per last prefill chunk."""
    kv_tokens_read: int
    """Cached tokens whose keys and values the step's attention reads, over all its requests."""
    attention_pairs: int
    """(query, key) pairs the step's attention scores: sum over its tokens of the positions each sees."""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def num_tokens(self) -> int:
        return self.prefill_tokens + self.decodes

    @classmethod
    def of(cls, batch: ScheduledBatch, start: float, end: float) -> StepRecord:
        prefill_tokens = kv_read = pairs = 0
        for chunk in batch.prefills:
            n, s = len(chunk.token_ids), chunk.start_pos
            prefill_tokens += n
            kv_read += s + n
            pairs += n * s + n * (n + 1) // 2
        for slot in batch.decodes:
            kv_read += slot.position + 1
            pairs += slot.position + 1
        return cls(start=start, end=end, prefill_tokens=prefill_tokens, decodes=len(batch.decodes),
                   num_sampled=batch.num_sampling, kv_tokens_read=kv_read, attention_pairs=pairs)
