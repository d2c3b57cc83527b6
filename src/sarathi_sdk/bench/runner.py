"""Serve a workload through an Engine and record what happened: requests, steps, timings.

- `StepRecorder` is a plugin: it wraps the model backend the factory hooks build (a pluggy wrapper
  around `sarathi_make_backend`), so each step is timed around `backend.execute` alone. The time a
  step's model work takes is what MBU, MFU and SARATHI's decode throughput divide by; the idle time
  between arrivals never counts as a step.
- `BackendProbe` is a plugin that keeps the backend the factory hooks built, for benchmarks that
  read the bundled backend's own numbers.
- `serve` submits each request at its arrival time (greedy, `ignore_eos`, so every request produces
  exactly its output length on any weights) and turns each request's final metrics into a
  `RequestRecord` on the run's clock.

Imports only the public API and the benchmark's own modules.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Generator, Sequence
from typing import Any

import anyio

from .. import Engine, RequestOutput, SamplingParams, hookimpl
from ..batch import ScheduledBatch, StepOutput
from ..config import EngineConfig
from ..interfaces import KVCacheSpec, ModelBackend
from .records import RequestRecord, StepRecord, final_metrics
from .tasks import gather
from .workloads import BenchRequest, bench_prompt


class _TimedBackend:
    """The engine's backend with every `execute` timed into the recorder."""

    def __init__(self, inner: ModelBackend, recorder: StepRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        return self._inner.kv_cache_spec(config)

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        self._inner.start(config, num_blocks)

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        start = time.perf_counter()
        output = self._inner.execute(batch)
        self._recorder.steps.append(StepRecord.of(batch, start, time.perf_counter()))
        return output

    def close(self) -> None:
        self._inner.close()


class StepRecorder:
    """`Engine(plugins=[recorder])`: a StepRecord per executed step, on the perf_counter clock."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.backend: ModelBackend | None = None
        """The backend it wraps: the engine's own, for what it says of itself (`kernel_variant`)."""

    @hookimpl(wrapper=True)
    def sarathi_make_backend(self) -> Generator[None, Any, Any]:
        self.backend = yield
        return None if self.backend is None else _TimedBackend(self.backend, self)

    def since(self, t0: float, first: int = 0) -> list[StepRecord]:
        """Steps from index `first` on, moved onto a clock whose zero is `t0`."""
        return [StepRecord(s.start - t0, s.end - t0, s.prefill_tokens, s.decodes, s.num_sampled,
                           s.kv_tokens_read, s.attention_pairs) for s in self.steps[first:]]


_salts = itertools.count(1)


async def serve(engine: Engine, requests: Sequence[BenchRequest], arrivals: Sequence[float], vocab_size: int,
                progress: Any = None, shared_prefix_len: int = 0) -> tuple[float, list[RequestRecord]]:
    """Serve `requests`, request i arriving `arrivals[i]` seconds after the start; returns the start
    (perf_counter) and one record per request. Prompts differ on every call (no two runs share a
    prefix, whatever the engine caches); within a call, all start with the same `shared_prefix_len`
    tokens (`workloads.bench_prompt`)."""
    salt = next(_salts) * len(requests)
    t0 = time.perf_counter()

    async def one(i: int, request: BenchRequest) -> RequestRecord:
        delay = t0 + arrivals[i] - time.perf_counter()
        if delay > 0:
            await anyio.sleep(delay)
        params = SamplingParams(max_tokens=request.output_len, temperature=0, ignore_eos=True)
        prompt = bench_prompt(request.prompt_len, salt, i, vocab_size, shared_prefix_len)
        output = await engine.complete(prompt, params)
        if progress is not None:
            progress.update(1)
        return _record(output, t0)

    records = await gather(*(one(i, r) for i, r in enumerate(requests)))
    return t0, records


def _record(output: RequestOutput, t0: float) -> RequestRecord:
    metrics = final_metrics(output)
    first_token, scheduled = metrics.first_token_time, metrics.first_scheduled_time
    if first_token is None or scheduled is None:  # ignore_eos with max_tokens >= 1: never
        raise ValueError(f"request {output.request_id} finished without a token")
    times = list(itertools.accumulate(metrics.tbts, initial=first_token))
    return RequestRecord(
        arrival=metrics.arrival_time - t0,
        scheduled=scheduled - t0,
        token_times=tuple(t - t0 for t in times),
        finished=metrics.finished_time - t0,
        prompt_len=metrics.num_prompt_tokens,
        num_preemptions=metrics.num_preemptions,
        num_cached_tokens=metrics.num_cached_tokens,
    )


class BackendProbe:
    """Plugin: keeps the model backend the factory hooks build (a pluggy wrapper, as `StepRecorder`)."""

    def __init__(self) -> None:
        self.backend: ModelBackend | None = None

    @hookimpl(wrapper=True)
    def sarathi_make_backend(self) -> Generator[None, ModelBackend | None, ModelBackend | None]:
        self.backend = yield
        return self.backend
