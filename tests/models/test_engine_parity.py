"""End to end: a random Llama served by `Engine` gives transformers' greedy tokens at any token budget."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.models.helpers import reference_greedy

PROMPTS = [[(7 * i + 3) % 256 for i in range(n)] for n in (9, 40, 75)]
NEW_TOKENS = 32


@pytest.mark.parametrize("token_budget", [1, 7, 64, 512])
async def test_engine_greedy_tokens_match_hf_at_every_token_budget(token_budget, checkpoint, reference):
    want = [reference_greedy(reference("llama"), p, NEW_TOKENS) for p in PROMPTS]
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), token_budget=token_budget, max_num_seqs=min(token_budget, 3),
                          dtype="float32", block_size=4) as engine:
            outputs = await asyncio.gather(*(engine.complete(p, params) for p in PROMPTS))
            assert engine.stats().num_steps >= NEW_TOKENS
    assert [list(o.token_ids) for o in outputs] == want
