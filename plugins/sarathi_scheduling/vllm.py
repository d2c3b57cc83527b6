"""The `vllm` baseline: prefill-prioritizing iteration-level scheduling, as in the original vLLM.

Reproduces the scheduler of vLLM before chunked prefill (Kwon et al., SOSP'23, "Efficient Memory
Management for Large Language Model Serving with PagedAttention"; vLLM v0's default), the baseline
SARATHI and Sarathi-Serve compare against. Steps are phase-homogeneous:

1. **prefill step**, whenever the head of the waiting queue can start: waiting requests in
   `sort_key` order, each with its whole prompt (never chunked) and KV blocks for all of it, while
   the prompts add up to at most `token_budget` (vLLM's `max_num_batched_tokens`), `max_num_seqs`
   allows and the KV cache holds them. A prompt longer than the budget runs alone in its step, so
   every admissible request can run. The first request that does not fit stops admission. With the
   prefix cache, a "whole prompt" is what follows the request's cached whole blocks.
2. otherwise a **decode step**: every running decode, one token each (plus proposed tokens to verify,
   with speculative decoding, within `token_budget`). When the cache cannot hold a
   decode's next token, running requests behind it in key order are preempted, the last first
   (recompute); they rejoin the waiting queue, to be prefilled whole again.

Prefills therefore pause every decode ("generation stalls"), which is what SARATHI removes.
`max_num_partial_prefills`, `long_prefill_token_threshold` and the dynamic chunk schedule do not apply.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import Request, ScheduledBatch

from .policy_base import PolicyBase


class VLLMPolicy(PolicyBase):
    def schedule(self) -> ScheduledBatch:
        prefills = self._whole_prompts()
        if prefills:
            return self.build_batch(prefills, ())
        decodes = self.schedule_decodes(set())
        return self.build_batch((), decodes, self.speculate(decodes, self.config.token_budget - len(decodes)))

    def _whole_prompts(self) -> list[tuple[Request, int]]:
        prefills: list[tuple[Request, int]] = []
        num_batched = 0
        while self.waiting and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            self.reuse_prefix(request)
            num_tokens = request.num_uncomputed_tokens
            if prefills and num_batched + num_tokens > self.config.token_budget:
                self.drop_prefix(request)
                break
            if not self.kv.allocate(request, num_tokens):
                self.drop_prefix(request)
                break
            self.admit(request)
            prefills.append((request, num_tokens))
            num_batched += num_tokens
        return prefills
