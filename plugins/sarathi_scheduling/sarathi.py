"""The SARATHI policy: decode-maximal batching with chunked prefills under one token budget.

Each step, in this order (Sarathi-Serve's stall-free batching):

1. every running decode, one token each: decodes are never paused for a prefill;
2. running requests part-way through their prompt, each chunk `min(remaining, budget left)`;
3. waiting requests in order, the same way, while the budget, `max_num_seqs` and the KV cache allow.

The budget left after the decodes is clamped at zero. When the KV cache cannot hold a running
request's next tokens, the youngest running request is preempted, and no new request is admitted that
step. A new request whose first chunk does not fit waits at the head of the queue; it cannot wait
forever, because blocks only return as running requests finish or are preempted, and the engine
refuses at admission any request that would not fit in the whole cache.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import Request, RequestStatus, ScheduledBatch

from .policy_base import PolicyBase


class SarathiPolicy(PolicyBase):
    def schedule(self) -> ScheduledBatch:
        scheduled: set[str] = set()
        preemptions_before = self._num_preemptions
        decodes: list[Request] = []
        for request in list(self.running):
            if self._ready(request, scheduled) and request.is_decode:
                if self.allocate_or_preempt(request, 1, scheduled):
                    decodes.append(request)
                    scheduled.add(request.request_id)
        budget = max(0, self.config.token_budget - len(decodes))

        prefills: list[tuple[Request, int]] = []
        for request in list(self.running):
            if budget == 0:
                break
            if self._ready(request, scheduled):
                num_tokens = self.chunk_size(request, budget)
                if self.allocate_or_preempt(request, num_tokens, scheduled):
                    prefills.append((request, num_tokens))
                    scheduled.add(request.request_id)
                    budget -= num_tokens

        if self._num_preemptions == preemptions_before:
            while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
                request = self.waiting[0]
                num_tokens = self.chunk_size(request, budget)
                if not self.kv.allocate(request, num_tokens):
                    break
                self.admit(request)
                prefills.append((request, num_tokens))
                budget -= num_tokens
        return self.build_batch(prefills, decodes)

    def chunk_size(self, request: Request, budget: int) -> int:
        """Tokens of this request's prefill to run now."""
        return min(request.num_uncomputed_tokens, budget)

    @staticmethod
    def _ready(request: Request, scheduled: set[str]) -> bool:
        return (
            request.status is RequestStatus.RUNNING
            and not request.in_flight
            and request.request_id not in scheduled
        )
