"""What every bundled batch policy shares: the queues, admission bookkeeping, preemption, update.

A policy subclasses `PolicyBase` and writes only `schedule()`. The queues, both kept sorted by
`sort_key` (see `ordering`: arrival, or priority then arrival):

- `waiting`: requests not holding KV blocks, served from the front. A preempted request goes back in
  at its key's place, which under FCFS is the front: it is the next to run again.
- `running`: requests holding KV blocks.

When the cache is full, a request preempts the running requests behind it in key order, the last
first, never one ahead of it (see `allocate_or_preempt`). Preemption is by recompute (as in vLLM and
Sarathi-Serve): the victim's blocks are freed and its whole context, prompt and generated tokens, is
prefilled again when it returns. A request that is part of an executing batch (`in_flight`) is never
scheduled, preempted or freed until `update` sees its batch.

Speculative decoding: a running decode may hold a `proposal` (set by the engine between steps). A
policy passes its scheduled decodes to `speculate`, which picks how many proposed tokens each verifies
(within the budget left and the free blocks, never preempting for them); `update` records the accepted
ones and `trim`s the blocks of the rejected positions.

Prefix cache: a policy calls `reuse_prefix` on the head of `waiting` before sizing its first chunk
(the KV manager's `match_prefix`: the request then starts after its cached whole blocks, its own
after a preemption included), and `drop_prefix` if it does not start it after all, so waiting requests
hold no blocks between steps. `admit` records, at a request's first admission, its cached prompt
tokens (`Request.num_cached_tokens`) and the totals behind `EngineStats.prefix_cache_hit_rate`.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

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

from .ordering import ORDERS


class PolicyBase:
    """Queues and bookkeeping; subclasses decide what each step carries."""

    def __init__(self, config: EngineConfig, kv_cache_manager: KVCacheManager) -> None:
        self.config = config
        self.kv = kv_cache_manager
        self.sort_key = ORDERS[config.policy_order]
        """Order of service: smallest key first; the largest running key is the preemption victim."""
        self.waiting: list[Request] = []
        self.running: list[Request] = []
        self._requests: dict[str, Request] = {}
        self._aborted_in_flight: dict[str, Request] = {}
        self._step_id = 0
        self._num_preemptions = 0
        self._num_prompt_tokens = 0
        self._num_cached_prompt_tokens = 0
        self.cache_ran_short = False
        """Some allocation failed since the policy last cleared this (at the start of its step): a
        policy then admits nobody new, whose blocks the requests already running need first."""

    def add(self, request: Request) -> None:
        request.status = RequestStatus.WAITING
        self._requests[request.request_id] = request
        bisect.insort(self.waiting, request, key=self.sort_key)

    def abort(self, request_id: str, reason: FinishReason = FinishReason.ABORT) -> Request | None:
        request = self._requests.pop(request_id, None)
        if request is None:
            return None
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.finish(reason)
        if request.in_flight:
            self._aborted_in_flight[request_id] = request
        else:
            self.kv.free(request)
        return request

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def stats(self) -> PolicyStats:
        return PolicyStats(len(self.waiting), len(self.running), self._num_preemptions,
                           self._num_prompt_tokens, self._num_cached_prompt_tokens)

    def update(self, batch: ScheduledBatch, output: StepOutput) -> list[Request]:
        finished: list[Request] = []
        for chunk in batch.prefills:
            self._advance(chunk.request_id, len(chunk.token_ids), chunk.is_last_chunk, output, finished)
        for slot in batch.decodes:
            accepted = output.accepted.get(slot.request_id, ())
            if accepted and accepted != slot.proposal[: len(accepted)]:
                raise RuntimeError(f"request {slot.request_id}: the backend accepted {accepted}, "
                                   f"not a prefix of the proposed {slot.proposal}")
            request = self._advance(slot.request_id, 1 + len(accepted), True, output, finished)
            if slot.proposal and request is not None:
                self.release_rejected(request)
        if finished:
            # one pass over `running` however many finished, instead of a remove() each
            self.running = [r for r in self.running if r.status is RequestStatus.RUNNING]
        return finished

    def _advance(self, request_id: str, num_tokens: int, samples: bool, output: StepOutput,
                 finished: list[Request]) -> Request | None:
        """Count the step's computed tokens and record its sampled ones; the request if it still runs."""
        request = self._requests.get(request_id)
        if request is None:
            aborted = self._aborted_in_flight.pop(request_id)
            aborted.in_flight = False
            self.kv.free(aborted)
            return None
        request.in_flight = False
        request.num_computed_tokens += num_tokens
        request.proposal = ()
        if not samples:
            return request
        for token_id in output.new_tokens(request_id):
            reason = request.append_token(token_id)
            if reason is not None:
                request.finish(reason)
                del self._requests[request_id]
                self.kv.free(request)
                finished.append(request)
                return None
        return request

    def release_rejected(self, request: Request) -> None:
        """After a verification: give back the blocks of the positions it rejected."""
        self.kv.trim(request)

    def reuse_prefix(self, request: Request) -> None:
        """Start the head of `waiting` after its cached prefix: its block table begins with the shared
        blocks and `num_computed_tokens` counts their tokens. Before its first chunk is sized."""
        if not request.block_table:
            request.num_computed_tokens = self.kv.match_prefix(request)

    def drop_prefix(self, request: Request) -> None:
        """The head of `waiting` does not start this step: give back its cached prefix (which stays
        cached), so it waits holding no blocks."""
        if request.block_table:
            self.kv.free(request)
        request.num_computed_tokens = 0

    def admit(self, request: Request) -> None:
        """Move the head of `waiting` into `running`; its first tokens are already allocated."""
        self.waiting.remove(request)
        request.status = RequestStatus.RUNNING
        if request.num_preemptions == 0:  # its first admission: what the prefix cache saved it
            request.num_cached_tokens = request.num_computed_tokens
            self._num_prompt_tokens += len(request.prompt_token_ids)
            self._num_cached_prompt_tokens += request.num_computed_tokens
        bisect.insort(self.running, request, key=self.sort_key)

    def preempt(self, request: Request) -> None:
        """Free the request's blocks and queue it, at its key's place, to be recomputed."""
        self.running.remove(request)
        self.kv.free(request)
        request.num_computed_tokens = 0
        request.status = RequestStatus.WAITING
        request.num_preemptions += 1
        self._num_preemptions += 1
        bisect.insort(self.waiting, request, key=self.sort_key)

    def allocate_or_preempt(self, request: Request, num_new_tokens: int, scheduled: set[str]) -> bool:
        """Allocate for a running request, preempting while the cache is full the running requests
        that come after it in key order, largest key first. Only those: a request never loses its
        blocks to one behind it, so the request at the head of the order always advances.

        When every request behind it is in flight or already scheduled this step, it waits a step,
        keeping its blocks (they can be preempted once they come back; preempting itself instead
        would let two requests evict each other forever across a pipeline). When nobody is behind it,
        it is itself preempted. False when it got nothing."""
        while not self.kv.allocate(request, num_new_tokens):
            self.cache_ran_short = True
            victim = self._victim(request, scheduled)
            if victim is None:
                return False
            self.preempt(victim)
            if victim is request:
                return False
        return True

    def speculate(self, decodes: list[Request], room: int | None) -> dict[str, int]:
        """How many of its proposed tokens each scheduled decode verifies this step (request id -> k,
        for k > 0), its blocks allocated: in key order, while `room` (budget tokens left; None: no
        limit) lasts and free blocks do (a proposal never preempts anyone)."""
        speculated: dict[str, int] = {}
        for request in decodes:
            if not request.proposal:
                continue
            if room is not None and room <= 0:
                break
            k = min(len(request.proposal), request.max_proposal_len)
            if room is not None:
                k = min(k, room)
            if k and self.kv.allocate(request, 1 + k):
                speculated[request.request_id] = k
                if room is not None:
                    room -= k
        return speculated

    def schedule_decodes(self, scheduled: set[str]) -> list[Request]:
        """Every running decode that is not in flight, one token each, in key order; each is added
        to `scheduled`. A decode that gets no block (preempted, or waiting on in-flight holders) is
        left out."""
        decodes: list[Request] = []
        for request in [r for r in self.running if not r.in_flight and r.is_decode]:
            if request.status is RequestStatus.RUNNING and self.allocate_or_preempt(request, 1, scheduled):
                decodes.append(request)
                scheduled.add(request.request_id)
        return decodes

    def _victim(self, request: Request, scheduled: set[str]) -> Request | None:
        """The largest-key running request behind `request` that is free to lose its blocks; the
        request itself when nobody is behind it; None when all behind it are busy this step."""
        # `running` is sorted by key: the victim is near the end, so this rarely walks far
        for candidate in reversed(self.running):
            if candidate is request:
                return request if candidate is self.running[-1] else None
            if not candidate.in_flight and candidate.request_id not in scheduled:
                return candidate
        raise RuntimeError(f"request {request.request_id} is not running; only running requests allocate")

    def build_batch(self, prefills: Iterable[tuple[Request, int]], decodes: Iterable[Request],
                    speculated: Mapping[str, int] | None = None) -> ScheduledBatch:
        """Freeze the step's chunks and decode slots (each with the proposed tokens `speculated` gives
        it) and mark their requests in flight."""
        chunks = []
        for request, num_tokens in prefills:
            chunks.append(request.prefill_chunk(num_tokens))
            request.in_flight = True
        slots = []
        for request in decodes:
            slots.append(request.decode_slot(speculated.get(request.request_id, 0) if speculated else 0))
            request.in_flight = True
        if not chunks and not slots:
            return ScheduledBatch(step_id=self._step_id)
        self._step_id += 1
        return ScheduledBatch(step_id=self._step_id, prefills=tuple(chunks), decodes=tuple(slots))
