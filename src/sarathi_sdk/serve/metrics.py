"""`GET /metrics`: the engine in the Prometheus text format, with no Prometheus library.

Two sources: `engine.stats()` read at scrape time (waiting and running requests, KV blocks, steps,
preemptions, tokens), and `RequestObserver`, an observer plugin (`Engine(plugins=[observer])`) that
records every finished request's metrics: time to first token, time between tokens and end-to-end
latency as histograms, finish reasons and token counts as counters. The observer runs on the event
loop thread, like the engine, so it needs no lock.

Imports only the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable

from .. import EngineStats, RequestOutput
from ..engine import Engine
from ..errors import SarathiError
from ..hookspecs import hookimpl

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "sarathi_"
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TBT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Histogram:
    """Cumulative-bucket histogram, as Prometheus exposes one."""

    def __init__(self, name: str, help: str, buckets: Iterable[float]) -> None:
        self.name, self.help = name, help
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self) -> list[str]:
        name = PREFIX + self.name
        lines = [f"# HELP {name} {self.help}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        lines += [f"{name}_sum {self.sum!r}", f"{name}_count {cumulative}"]
        return lines


class RequestObserver:
    """Observer plugin: records the metrics of every request the engine finishes."""

    def __init__(self) -> None:
        self.ttft = Histogram("time_to_first_token_seconds", "Time from arrival to the first token.", TTFT_BUCKETS)
        self.tbt = Histogram("time_between_tokens_seconds", "Time between consecutive tokens of a request.",
                             TBT_BUCKETS)
        self.latency = Histogram("e2e_request_latency_seconds", "Time from arrival to the last output.",
                                 LATENCY_BUCKETS)
        self.finished: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.generated_tokens = 0

    @hookimpl
    def sarathi_on_request_finished(self, request_id: str, output: RequestOutput) -> None:
        self.finished[str(output.finish_reason)] += 1
        metrics = output.metrics
        if metrics is None:
            return
        if metrics.ttft is not None:
            self.ttft.observe(metrics.ttft)
        for tbt in metrics.tbts:
            self.tbt.observe(tbt)
        self.latency.observe(metrics.e2e_latency)
        self.prompt_tokens += metrics.num_prompt_tokens
        self.generated_tokens += metrics.num_generated_tokens


def render(stats: EngineStats | None, observer: RequestObserver, healthy: bool) -> str:
    """The exposition text; `stats` None leaves the engine's gauges out (not started)."""
    lines = _metric("engine_healthy", "gauge", "1 while the engine's step loop runs, 0 once it failed.",
                    int(healthy))
    if stats is not None:
        lines += _metric("requests_waiting", "gauge", "Requests waiting to be scheduled.", stats.num_waiting)
        lines += _metric("requests_running", "gauge", "Requests running (holding KV blocks).", stats.num_running)
        lines += _metric("kv_blocks_total", "gauge", "KV-cache blocks in all.", stats.kv_blocks_total)
        lines += _metric("kv_blocks_used", "gauge", "KV-cache blocks held by requests.",
                         stats.kv_blocks_total - stats.kv_blocks_free)
        lines += _metric("steps_total", "counter", "Engine steps executed.", stats.num_steps)
        lines += _metric("preemptions_total", "counter", "Requests preempted.", stats.num_preemptions)
        lines += _metric("tokens_processed_total", "counter", "Prefill and decode tokens executed.",
                         stats.num_tokens_processed)
    name = PREFIX + "requests_finished_total"
    lines += [f"# HELP {name} Requests finished, by finish reason.", f"# TYPE {name} counter"]
    for reason in ("stop", "length", "abort"):
        lines.append(f'{name}{{finish_reason="{reason}"}} {observer.finished[reason]}')
    lines += _metric("prompt_tokens_total", "counter", "Prompt tokens of finished requests.", observer.prompt_tokens)
    lines += _metric("generation_tokens_total", "counter", "Tokens generated by finished requests.",
                     observer.generated_tokens)
    for histogram in (observer.ttft, observer.tbt, observer.latency):
        lines += histogram.lines()
    return "\n".join(lines) + "\n"


def engine_stats(engine: Engine) -> EngineStats | None:
    try:
        return engine.stats()
    except SarathiError:
        return None


def _metric(name: str, kind: str, help: str, value: float) -> list[str]:
    name = PREFIX + name
    return [f"# HELP {name} {help}", f"# TYPE {name} {kind}", f"{name} {value}"]
