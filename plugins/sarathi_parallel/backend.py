"""PipelineBackend: the engine's `ModelBackend` for `pipeline_parallel_size` > 1, and stage 0 of the pipeline.

Which process runs what: the engine's process runs the engine loop and stage 0 (the embedding, the
first layers, and after the last stage the final norm, LM head and sampler); stages 1 .. N-1 run
in their own processes (`worker`). The engine calls `execute` from up to N threads at once, one per
micro-batch in flight. Each call: stage 0's layers under the compute lock (one model, one attention
context), the batch and hidden states to stage 1 under the send lock (a message is several sends that
must not interleave), then a wait for the router thread, which receives every result from the last
stage and hands it to the call that expects its step id; then sampling, under the compute lock again.
So stage 0 computes micro-batch k+1 while stage 1 computes k: the stages overlap.

Failure: a stage process dying (its sentinel fires, or a socket closes under a send or receive) fails
every pending and later `execute`, so the engine dies and ends every stream with `EngineDeadError`;
`close` then stops what is left. `pipeline_stats()` gives the per-stage bubble accounting.

Imports torch, the public `sarathi_sdk` API and this package.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import torch

from sarathi_sdk import (
    ConfigError,
    EngineConfig,
    KVCacheSpec,
    PipelineStage,
    PluginError,
    PluginManager,
    ScheduledBatch,
    StageStats,
    StepOutput,
)

from . import wire
from .accounting import PipelineClock
from .launch import StageProcesses

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
"""Seconds `close` waits for STOP to travel the pipeline and come back."""


class PipelineBackend:
    """See the module docstring. Built by this plugin's `sarathi_make_backend`."""

    def __init__(self, config: EngineConfig, sampler: Any = None) -> None:
        self.num_stages = config.pipeline_parallel_size
        self._failure: BaseException | None = None
        self._pending: dict[int, Future[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._lock = threading.Lock()
        self._compute = threading.Lock()
        self._send = threading.Lock()
        self._clock = PipelineClock(self.num_stages)
        self._router: threading.Thread | None = None
        self._closed = False
        self.processes = StageProcesses(self.num_stages)
        self.groups = self.processes.groups
        try:
            threads = StageProcesses.threads_per_stage(self.num_stages) if self.processes.spawned else 0
            if threads:
                torch.set_num_threads(threads)
            cuda = _is_cuda(config)
            self._device = torch.device("cuda" if cuda else "cpu")
            if cuda:
                self.groups.enable_cuda()
            stage_config = _stage_config(config)
            for rank in range(1, self.num_stages):
                self._send_json(rank, wire.CONFIG, {"config": stage_config, "num_threads": threads, "cuda": cuda})
            self.stage: PipelineStage = _build_stage(config, self.num_stages, sampler)
            self._remote = [self._recv_json(rank, wire.SPEC) for rank in range(1, self.num_stages)]
        except BaseException:
            self.processes.stop(graceful=False)
            raise
        self.layers = [self.stage.layers] + [(r["layers"][0], r["layers"][1]) for r in self._remote]

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        """Stage 0's spec, with the fewest blocks any stage can hold: every stage keeps the same ids."""
        spec = self.stage.kv_cache_spec(config)
        return dataclasses.replace(spec, num_blocks=min([spec.num_blocks, *(r["num_blocks"] for r in self._remote)]))

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        for rank in range(1, self.num_stages):
            self._send_json(rank, wire.START, {"num_blocks": num_blocks, "block_size": config.block_size})
        self.stage.start(config, num_blocks)
        for rank in range(1, self.num_stages):
            self._recv_json(rank, wire.READY)
        self.processes.watch(self._fail)
        self._router = threading.Thread(target=self._route, daemon=True, name="sarathi-pipeline-router")
        self._router.start()

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        if batch.is_empty:
            return StepOutput(step_id=batch.step_id, sampled={})
        self._raise_if_failed()
        self._clock.enter()
        try:
            head, body = wire.encode_batch(batch)
            with self._compute:
                started = time.perf_counter()
                hidden = self.stage.forward(batch, None)  # [T, H]
                busy = time.perf_counter() - started
            result = self._expect(batch.step_id)
            timings = torch.zeros(self.num_stages, dtype=torch.float64)  # [N] busy seconds per stage
            timings[0] = busy
            with self._send:
                for tensor in (wire.with_hidden(head, hidden), body, timings, hidden.contiguous()):
                    self.groups.send(tensor, 1, wire.FORWARD_TAG)
            rows, timings = result.result()  # [S, H], [N]
            with self._compute:
                started = time.perf_counter()
                output = self.stage.sample(batch, rows)
                timings[0] += time.perf_counter() - started
            self._clock.add_busy(timings.tolist())
            return output
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._clock.leave()

    def pipeline_stats(self) -> list[StageStats]:
        """Per stage: layers, micro-batches, busy and in-flight seconds, bubble fraction."""
        return self._clock.stats(self.layers)

    def reset_pipeline_stats(self) -> None:
        """Start counting afresh (after a benchmark's warm-up)."""
        self._clock.reset()

    def close(self) -> None:
        """STOP through every stage (when they are healthy), then make sure every process exited.
        Idempotent; never waits on a dead stage."""
        if self._closed:
            return
        self._closed = True
        healthy = self._failure is None and self._router is not None
        if healthy:
            threading.Thread(target=self._send_stop, daemon=True, name="sarathi-pipeline-stop").start()
            self._router.join(STOP_TIMEOUT)
        self._fail(RuntimeError("the pipeline backend is closed"))
        self.processes.stop(graceful=healthy)
        self.stage.close()

    def _send_stop(self) -> None:
        try:
            with self._send:
                self.groups.send(wire.header(wire.STOP), 1, wire.FORWARD_TAG)
        except RuntimeError:
            logger.warning("could not send STOP to stage 1; its process is stopped instead")

    def _route(self) -> None:
        """Router thread: every result of the last stage to the `execute` waiting for its step."""
        last = self.num_stages - 1
        try:
            while True:
                head = self.groups.recv(torch.empty(8, dtype=torch.int64), last, wire.RETURN_TAG)  # [8]
                if int(head[0]) == wire.STOP:
                    return
                timings = self.groups.recv(torch.empty(self.num_stages, dtype=torch.float64), last, wire.RETURN_TAG)
                rows = self.groups.recv(wire.hidden_buffer(head, int(head[2]), self._device), last,
                                        wire.RETURN_TAG)  # [S, H]
                with self._lock:
                    waiter = self._pending.pop(int(head[1]), None)
                if waiter is None:
                    raise RuntimeError(f"the last stage returned step {int(head[1])}, which nobody awaits")
                waiter.set_result((rows, timings))
        except BaseException as exc:
            self._fail(exc)

    def _expect(self, step_id: int) -> Future[tuple[torch.Tensor, torch.Tensor]]:
        waiter: Future[tuple[torch.Tensor, torch.Tensor]] = Future()
        with self._lock:
            self._raise_if_failed()
            self._pending[step_id] = waiter
        return waiter

    def _fail(self, exc: BaseException) -> None:
        """The pipeline cannot go on: every pending and later `execute` raises."""
        with self._lock:
            if self._failure is None:
                self._failure = exc
                if not self._closed:
                    logger.error("the pipeline failed: %s", exc)
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.set_exception(RuntimeError(f"the pipeline failed: {self._failure}"))

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"the pipeline failed: {self._failure}") from self._failure

    def _send_json(self, rank: int, kind: int, document: dict[str, Any]) -> None:
        head, payload = wire.encode_json(kind, document)
        self.groups.send(head, rank, wire.CONTROL_TAG)
        self.groups.send(payload, rank, wire.CONTROL_TAG)

    def _recv_json(self, rank: int, kind: int) -> dict[str, Any]:
        head = self.groups.recv(torch.empty(8, dtype=torch.int64), rank, wire.CONTROL_TAG)  # [8]
        if int(head[0]) != kind:
            raise RuntimeError(f"pipeline setup out of order: expected message {kind} from stage {rank}")
        document = wire.decode_json(self.groups.recv(torch.empty(int(head[2]), dtype=torch.uint8), rank,
                                                     wire.CONTROL_TAG))
        if "error" in document:
            raise ConfigError(f"pipeline stage {rank} failed: {document['error']}")
        return document


def _build_stage(config: EngineConfig, num_stages: int, sampler: Any) -> PipelineStage:
    """Stage 0 through the same plugins as the other processes: bundled and entry-point ones."""
    plugins = PluginManager(dataclasses.replace(config, plugins=()))
    stage = plugins.hook.sarathi_make_pipeline_stage(
        config=config, registries=plugins.registries(), stage_index=0, num_stages=num_stages,
        sampler=sampler if sampler is not None else plugins.hook.sarathi_make_sampler(config=config),
    )
    if stage is None:
        raise PluginError("no plugin provides a pipeline stage (sarathi_make_pipeline_stage)")
    return stage


def _stage_config(config: EngineConfig) -> dict[str, Any]:
    """The config as plain JSON fields, without the plugin objects (they cannot cross processes)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "plugins"}


def _is_cuda(config: EngineConfig) -> bool:
    return config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
