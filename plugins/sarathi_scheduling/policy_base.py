"""What every bundled batch policy shares: the queues, admission bookkeeping, preemption, update.

A policy subclasses `PolicyBase` and writes only `schedule()`. The queues:

- `waiting`: requests not holding KV blocks, served from the left; a preempted request is put back at
  the left so it is the next to run again.
- `running`: requests holding KV blocks, ordered by `sort_key` (arrival, or priority then arrival).

Preemption is by recompute (as in vLLM and Sarathi-Serve): the victim's blocks are freed and its whole
context, prompt and generated tokens, is prefilled again when it returns. A request that is part of an
executing batch (`in_flight`) is never scheduled, preempted or freed until `update` sees its batch.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable

from sarathi_sdk import (
    EngineConfig,
    FinishReason,
    KVCacheManager,
    PolicyStats,
    Request,
    RequestStatus,
    ScheduledBatch,
    StepOutput,
)


class PolicyBase:
    """Queues and bookkeeping; subclasses decide what each step carries."""

    def __init__(self, config: EngineConfig, kv_cache_manager: KVCacheManager) -> None:
        self.config = config
        self.kv = kv_cache_manager
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._requests: dict[str, Request] = {}
        self._aborted_in_flight: dict[str, Request] = {}
        self._step_id = 0
        self._num_preemptions = 0

    @staticmethod
    def sort_key(request: Request) -> tuple[int, ...]:
        """Order of service; the largest key is the preemption victim. FCFS: arrival."""
        return (request.arrival_index,)

    def add(self, request: Request) -> None:
        request.status = RequestStatus.WAITING
        self._requests[request.request_id] = request
        self.waiting.append(request)

    def abort(self, request_id: str) -> Request | None:
        request = self._requests.pop(request_id, None)
        if request is None:
            return None
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.finish(FinishReason.ABORT)
        if request.in_flight:
            self._aborted_in_flight[request_id] = request
        else:
            self.kv.free(request)
        return request

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def stats(self) -> PolicyStats:
        return PolicyStats(len(self.waiting), len(self.running), self._num_preemptions)

    def update(self, batch: ScheduledBatch, output: StepOutput) -> list[Request]:
        finished: list[Request] = []
        for chunk in batch.prefills:
            self._advance(chunk.request_id, len(chunk.token_ids), chunk.is_last_chunk, output, finished)
        for slot in batch.decodes:
            self._advance(slot.request_id, 1, True, output, finished)
        return finished

    def _advance(self, request_id: str, num_tokens: int, samples: bool, output: StepOutput,
                 finished: list[Request]) -> None:
        request = self._requests.get(request_id)
        if request is None:
            aborted = self._aborted_in_flight.pop(request_id)
            aborted.in_flight = False
            self.kv.free(aborted)
            return
        request.in_flight = False
        request.num_computed_tokens += num_tokens
        if samples:
            reason = request.append_token(output.sampled[request_id])
            if reason is not None:
                request.finish(reason)
                self.running.remove(request)
                del self._requests[request_id]
                self.kv.free(request)
                finished.append(request)

    def admit(self, request: Request) -> None:
        """Move the head of `waiting` into `running`; its first chunk is already allocated."""
        self.waiting.remove(request)
        request.status = RequestStatus.RUNNING
        bisect.insort(self.running, request, key=self.sort_key)

    def preempt(self, request: Request) -> None:
        """Free the request's blocks and put it first in line to be recomputed."""
        self.running.remove(request)
        self.kv.free(request)
        request.num_computed_tokens = 0
        request.status = RequestStatus.WAITING
        request.num_preemptions += 1
        self._num_preemptions += 1
        self.waiting.appendleft(request)

    def allocate_or_preempt(self, request: Request, num_new_tokens: int, scheduled: set[str]) -> bool:
        """Allocate for a running request, preempting the youngest unscheduled running requests while
        the cache is full. False when the request itself was the youngest and got preempted."""
        while not self.kv.allocate(request, num_new_tokens):
            victim = max(
                (r for r in self.running if not r.in_flight and r.request_id not in scheduled),
                key=self.sort_key,
            )
            self.preempt(victim)
            if victim is request:
                return False
        return True

    def build_batch(self, prefills: Iterable[tuple[Request, int]], decodes: Iterable[Request]) -> ScheduledBatch:
        """Freeze the step's chunks and decode slots and mark their requests in flight."""
        chunks = tuple(request.prefill_chunk(num_tokens) for request, num_tokens in prefills)
        slots = tuple(request.decode_slot() for request in decodes)
        if not chunks and not slots:
            return ScheduledBatch(step_id=self._step_id)
        for item in chunks + slots:
            self._requests[item.request_id].in_flight = True
        self._step_id += 1
        return ScheduledBatch(step_id=self._step_id, prefills=chunks, decodes=slots)
