"""The `orca` baseline: iteration-level scheduling with whole prefills mixed into decode steps.

Reproduces Orca (Yu et al., OSDI'22, "Orca: A Distributed Serving System for Transformer-Based
Generative Models") as Sarathi-Serve's Orca baseline implements it over a paged KV cache. Each step:

1. every running decode, one token each (plus proposed tokens to verify, with speculative decoding:
   those alone are held to `token_budget`, so they cannot grow a step without bound); when the cache cannot hold a decode's next token, running
   requests behind it in key order are preempted, the last first (recompute);
2. if the cache held every decode's token, waiting requests in `sort_key` order join the same step with their whole
   prompt (never chunked) and KV blocks for all of it, while `max_num_seqs` allows and the KV cache
   holds them. The first request that does not fit stops admission.

Orca bounds a step by its batch size only: `token_budget` does not apply, so one step can carry
several long prompts beside the decodes, and its duration varies with them (the bubbles and latency
spikes SARATHI's uniform, budgeted steps avoid). `max_num_partial_prefills`,
`long_prefill_token_threshold` and the dynamic chunk schedule do not apply either.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import Request, ScheduledBatch

from .policy_base import PolicyBase


class OrcaPolicy(PolicyBase):
    def schedule(self) -> ScheduledBatch:
        self.cache_ran_short = False
        decodes = self.schedule_decodes(set())
        speculated = self.speculate(decodes, self.config.token_budget - len(decodes))
        prefills: list[tuple[Request, int]] = []
        if not self.cache_ran_short:
            while self.waiting and len(self.running) < self.config.max_num_seqs:
                request = self.waiting[0]
                self.reuse_prefix(request)
                num_tokens = request.num_uncomputed_tokens
                if not self.kv.allocate(request, num_tokens):
                    self.drop_prefix(request)
                    break
                self.admit(request)
                prefills.append((request, num_tokens))
        return self.build_batch(prefills, decodes, speculated)
