"""The SARATHI policy (the default): decode-maximal batching with chunked prefills under one token budget.

Reproduces SARATHI (arXiv 2308.16369) in the stall-free form of Sarathi-Serve (OSDI'24, arXiv
2403.02310). Each step, in this order:

1. every running decode, one token each: decodes are never paused for a prefill; then the proposed
   tokens of those that have some (speculative decoding), while the budget lasts;
2. running requests part-way through their prompt, in `sort_key` order, each chunk sized by
   `ChunkRule` (budget left, `long_prefill_token_threshold`, the dynamic chunk schedule);
3. waiting requests in `sort_key` order, the same way, while the budget, `max_num_seqs`, the KV cache
   and `max_num_partial_prefills` allow. The first waiting request that does not fit stops admission
   (no skipping ahead, so no one starves). With the prefix cache, a request's first chunk starts
   after its cached whole blocks and is sized from there.

A prompt is *partial* from the step that schedules its first chunk until the step that schedules its
last. A waiting request whose first chunk would leave it partial is admitted only while fewer than
`max_num_partial_prefills` prompts are partial; one whose whole prompt fits in the step always is.

Decodes never exceed the budget (`max_num_seqs <= token_budget`), so a step never carries more than
`token_budget` tokens. When the KV cache cannot hold a running request's next tokens, the running
requests behind it in key order are preempted, the last first (recompute; `allocate_or_preempt`),
and no new request is admitted that step, so the blocks go to requests already running. Across a pipeline, a decode whose blocks can only come from
requests in flight waits one step: the one exception to "every running decode, every step". A
waiting request whose first chunk does not fit waits at the head of the queue; blocks only return as
running requests finish or are preempted, and the engine refuses at admission any request that would
not fit in the whole cache, so it cannot wait forever.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import EngineConfig, KVCacheManager, Request, RequestStatus, ScheduledBatch

from .chunking import ChunkRule
from .policy_base import PolicyBase

RUNNING = RequestStatus.RUNNING


class SarathiPolicy(PolicyBase):
    def __init__(self, config: EngineConfig, kv_cache_manager: KVCacheManager) -> None:
        super().__init__(config, kv_cache_manager)
        self.chunks = ChunkRule(config)
        self._partial: set[str] = set()
        """Running requests whose last prefill chunk has not been scheduled yet."""

    def schedule(self) -> ScheduledBatch:
        self._forget_stale_partials()
        self.cache_ran_short = False
        scheduled: set[str] = set()
        decodes = self.schedule_decodes(scheduled)
        speculated = self.speculate(decodes, self.config.token_budget - len(decodes))
        prefilling = [r for r in self.running if not r.in_flight and not r.is_decode]
        num_batched = len(decodes) + sum(speculated.values())

        prefills: list[tuple[Request, int]] = []
        for request in prefilling:
            if num_batched >= self.config.token_budget:
                break
            if request.status is not RUNNING:
                continue
            num_tokens = self.chunks.chunk_size(request, num_batched)
            if num_tokens and self.allocate_or_preempt(request, num_tokens, scheduled):
                self._record_chunk(request, num_tokens)
                prefills.append((request, num_tokens))
                scheduled.add(request.request_id)
                num_batched += num_tokens

        if not self.cache_ran_short:
            self._admit_waiting(prefills, num_batched)
        return self.build_batch(prefills, decodes, speculated)

    def _admit_waiting(self, prefills: list[tuple[Request, int]], num_batched: int) -> None:
        while (self.waiting and num_batched < self.config.token_budget
               and len(self.running) < self.config.max_num_seqs):
            request = self.waiting[0]
            self.reuse_prefix(request)
            num_tokens = self._first_chunk(request, num_batched)
            if num_tokens == 0:
                self.drop_prefix(request)
                break
            self.admit(request)
            self._record_chunk(request, num_tokens)
            prefills.append((request, num_tokens))
            num_batched += num_tokens

    def _first_chunk(self, request: Request, num_batched: int) -> int:
        """The size of a waiting request's first chunk, allocated; 0 when it cannot start this step."""
        num_tokens = self.chunks.chunk_size(request, num_batched)
        if num_tokens == 0:
            return 0
        max_partial = self.config.max_num_partial_prefills
        leaves_partial = num_tokens < request.num_uncomputed_tokens
        if leaves_partial and max_partial is not None and len(self._partial) >= max_partial:
            return 0
        return num_tokens if self.kv.allocate(request, num_tokens) else 0

    def _record_chunk(self, request: Request, num_tokens: int) -> None:
        if num_tokens < request.num_uncomputed_tokens:
            self._partial.add(request.request_id)
        else:
            self._partial.discard(request.request_id)

    def _forget_stale_partials(self) -> None:
        """Drop partial prompts that were preempted, aborted or finished since they were recorded."""
        requests = self._requests
        stale = [rid for rid in self._partial if rid not in requests or requests[rid].status is not RUNNING]
        self._partial.difference_update(stale)
