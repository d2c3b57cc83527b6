"""Two batches in flight on the torch backend (as `pipeline_parallel_size=2` asks): still HF's tokens."""

from __future__ import annotations

import asyncio

from sarathi_sdk import Engine, SamplingParams
from tests.models.helpers import reference_greedy

PROMPTS = [[(11 * i + k) % 256 for i in range(n)] for k, n in ((1, 5), (2, 30), (3, 17), (4, 44))]
NEW_TOKENS = 24


async def test_two_batches_in_flight_give_the_greedy_tokens_of_hf(checkpoint, reference):
    want = [reference_greedy(reference("llama"), p, NEW_TOKENS) for p in PROMPTS]
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), pipeline_parallel_size=2, token_budget=16,
                          dtype="float32", block_size=4) as engine:
            outputs = await asyncio.gather(*(engine.complete(p, params) for p in PROMPTS))
    assert [list(o.token_ids) for o in outputs] == want
