"""Seeded sampling through the engine: same seed, same tokens, whatever else shares the batch."""

from __future__ import annotations

import asyncio

from sarathi_sdk import Engine, SamplingParams

PROMPT = [(5 * i + 1) % 256 for i in range(23)]
OTHERS = [[(3 * i + k) % 256 for i in range(n)] for k, n in ((1, 40), (2, 7), (3, 61))]


async def sample(checkpoint, token_budget: int, with_others: bool, seed: int = 1234) -> tuple[int, ...]:
    seeded = SamplingParams(max_tokens=24, temperature=1.0, top_p=0.95, seed=seed, ignore_eos=True)
    others = SamplingParams(max_tokens=24, temperature=0.8, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), token_budget=token_budget, dtype="float32", block_size=4) as engine:
            jobs = [engine.complete(PROMPT, seeded)]
            if with_others:
                jobs += [engine.complete(p, others) for p in OTHERS]
            results = await asyncio.gather(*jobs)
    return results[0].token_ids


async def test_same_seed_same_tokens_alone_or_in_a_mixed_batch(checkpoint):
    alone = await sample(checkpoint, token_budget=512, with_others=False)
    assert await sample(checkpoint, token_budget=512, with_others=True) == alone
    assert await sample(checkpoint, token_budget=7, with_others=True) == alone


async def test_another_seed_gives_other_tokens(checkpoint):
    assert await sample(checkpoint, 64, False, seed=1) != await sample(checkpoint, 64, False, seed=2)
