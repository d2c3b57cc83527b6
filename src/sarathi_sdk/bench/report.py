"""The metric arithmetic of `sarathi bench`: records in, one flat dict of numbers out.

Definitions (seconds and tokens per second; percentiles interpolate linearly between order statistics):

- **TTFT** = first token - arrival, split into **scheduling delay** (first scheduled - arrival: queued)
  and **prefill time** (first token - first scheduled).
- **Time between tokens** (TBT): every gap between consecutive tokens of a request, pooled over all
  requests (the token population), so a stall that hits 16 decodes counts 16 times; gaps spent
  preempted are gaps like any other. **TPOT** is per request: (last token - first token) / (tokens - 1).
- **Throughput**: requests, output tokens, and prompt plus output tokens (end to end) per second of the
  run, the run lasting from its start (t=0) to the last request's end. Prompt tokens count whether
  computed or found in the prefix cache; **prefix-cache hit rate** is the share found there.
- **Decode throughput as SARATHI defines it** (arXiv 2308.16369, section 5): decode tokens per second
  of time spent on decodes. A decode-only step's time is all decode time; in a step that also carries
  prefill chunks, the decodes' time is the step's time minus what a prefill-only step of the same
  prefill tokens costs (`prefill_cost`, profiled on the same engine), so piggybacked decodes are
  charged only what they add to the chunk.
- **MBU / MFU** per step: the step's bytes (FLOPs) from `model_cost.ModelCost` over its time, against
  this machine's measured copy bandwidth (matmul rate).

Imports only the standard library.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from .model_cost import ModelCost
from .records import RequestRecord, StepRecord

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _spread(name: str, values: Sequence[float], qs: Sequence[int] = PERCENTILES) -> dict[str, float]:
    return {f"{name}_p{q}": percentile(values, q) for q in qs}


def request_metrics(requests: Sequence[RequestRecord]) -> dict[str, Any]:
    """Latency and throughput of a run, from its requests alone."""
    duration = max(r.finished for r in requests)
    tbts = [b - a for r in requests for a, b in zip(r.token_times, r.token_times[1:])]
    tpots = [(r.token_times[-1] - r.token_times[0]) / (r.output_len - 1) for r in requests if r.output_len > 1]
    output_tokens = sum(r.output_len for r in requests)
    out: dict[str, Any] = {
        "num_requests": len(requests),
        "duration": duration,
        "request_throughput": len(requests) / duration,
        "output_throughput": output_tokens / duration,
        "e2e_throughput": (output_tokens + sum(r.prompt_len for r in requests)) / duration,
        "num_preemptions": sum(r.num_preemptions for r in requests),
        "prefix_cache_hit_rate": sum(r.num_cached_tokens for r in requests) / max(1, sum(r.prompt_len for r in requests)),
        "num_output_tokens": output_tokens,
    }
    firsts = [r for r in requests if r.token_times]
    out |= _spread("ttft", [r.token_times[0] - r.arrival for r in firsts])
    out |= _spread("scheduling_delay", [r.scheduled - r.arrival for r in requests])
    out |= _spread("prefill_time", [r.token_times[0] - r.scheduled for r in firsts])
    out |= _spread("tbt", tbts)
    out["tbt_max"] = max(tbts, default=math.nan)
    out |= _spread("tpot", tpots)
    out |= _spread("e2e_latency", [r.finished - r.arrival for r in requests])
    return out


def decode_throughput(steps: Sequence[StepRecord], prefill_cost: Callable[[int], float]) -> float:
    """Decode tokens per second of decode time (see the module docstring); NaN without decodes."""
    decodes = sum(s.decodes for s in steps)
    seconds = 0.0
    for step in steps:
        if step.decodes:
            share = step.seconds - (prefill_cost(step.prefill_tokens) if step.prefill_tokens else 0.0)
            seconds += max(share, 0.0)
    if not decodes:
        return math.nan
    return decodes / seconds if seconds > 0 else math.inf


def step_metrics(steps: Sequence[StepRecord], cost: ModelCost | None = None,
                 bandwidth: float | None = None, matmul_rate: float | None = None) -> dict[str, Any]:
    """The distribution of tokens per step and step times, and MBU / MFU per step when the model's
    cost and the machine's rates are known."""
    tokens = [s.num_tokens for s in steps]
    seconds = [s.seconds for s in steps]
    out: dict[str, Any] = {
        "num_steps": len(steps),
        "num_decode_tokens": sum(s.decodes for s in steps),
        "tokens_per_step_mean": statistics.fmean(tokens) if tokens else math.nan,
        "tokens_per_step_max": max(tokens, default=0),
        "tokens_per_step_cv": statistics.pstdev(tokens) / statistics.fmean(tokens) if tokens else math.nan,
    }
    out |= _spread("tokens_per_step", tokens)
    out |= _spread("step_time", seconds)
    if cost is not None and bandwidth and matmul_rate:
        mbu = [cost.step_bytes(s) / s.seconds / bandwidth for s in steps if s.seconds > 0]
        mfu = [cost.step_flops(s) / s.seconds / matmul_rate for s in steps if s.seconds > 0]
        out |= _spread("mbu", mbu, (50, 90)) | _spread("mfu", mfu, (50, 90))
    return out


def piecewise_linear(points: Sequence[tuple[int, float]]) -> Callable[[int], float]:
    """tokens -> seconds through measured (tokens, seconds) points, straight lines between them and
    the end segments extended (a profile of prefill-only steps at a few chunk sizes)."""
    pts = sorted(points)
    if not pts:
        raise ValueError("no points to interpolate")
    if len(pts) == 1:
        (x0, y0), = pts
        return lambda tokens: y0 * tokens / x0

    def cost(tokens: int) -> float:
        i = 1
        while i < len(pts) - 1 and tokens > pts[i][0]:
            i += 1
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        return y0 + (y1 - y0) * (tokens - x0) / (x1 - x0)

    return cost
