"""The `static` baseline: request-level batching, as in FasterTransformer.

Reproduces the request-level batching of NVIDIA FasterTransformer, the "static batching" baseline of
Orca and SARATHI. A batch is formed only when no request is running:

1. up to `max_num_seqs` waiting requests in `sort_key` order, each reserving KV blocks for its whole
   lifetime up front (prompt plus `max_tokens`), as FasterTransformer preallocates; the first request
   that does not fit ends the batch;
2. one step runs all of their prompts whole; then decode steps run every member still going;
3. no request joins until every member has finished (or been aborted): the batch runs as long as
   its longest request, while finished members' slots stay idle.

Because memory is reserved for the whole lifetime, nobody is ever preempted; proposed tokens
(speculative decoding) never reach past it (`Request.max_proposal_len`), so they need no more. `token_budget`,
`max_num_partial_prefills`, `long_prefill_token_threshold` and the dynamic chunk schedule do not apply.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import Request, ScheduledBatch

from .policy_base import PolicyBase


class StaticPolicy(PolicyBase):
    def schedule(self) -> ScheduledBatch:
        if self.running:
            decodes = [r for r in self.running if not r.in_flight and r.is_decode]
            return self.build_batch((), decodes, self.speculate(decodes, None))
        return self._start_batch()

    def release_rejected(self, request: Request) -> None:
        """Nothing: the blocks of a rejected position are part of the lifetime reservation, and
        the request's later tokens are written there."""

    def _start_batch(self) -> ScheduledBatch:
        prefills: list[tuple[Request, int]] = []
        while self.waiting and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            self.reuse_prefix(request)
            if not self.kv.allocate(request, _lifetime_tokens(request)):
                self.drop_prefix(request)
                break
            self.admit(request)
            prefills.append((request, request.num_uncomputed_tokens))
        return self.build_batch(prefills, ())


def _lifetime_tokens(request: Request) -> int:
    """Positions the request will ever write: its context and every token still to come but the last,
    which is sampled and never fed back."""
    still_to_sample = request.sampling_params.max_tokens - len(request.output_token_ids)
    return request.num_uncomputed_tokens + still_to_sample - 1
