"""Soak: Poisson arrivals, a fifth of the requests cancelled at random moments in the three ways an app
can, a KV cache small enough to preempt. At the end nothing leaks and every request's tokens are (a
prefix of) what its prompt gives run alone.

SARATHI_SOAK_REQUESTS sets the number of requests: 300 by default (a few seconds), 2000 for the full soak.
`pytest -m soak` runs only this.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from sarathi_sdk import SamplingParams
from tests.engine.conftest import fake_engine, reference_tokens, wait_for

NUM_REQUESTS = int(os.environ.get("SARATHI_SOAK_REQUESTS", "300"))
ARRIVAL_RATE = 2000.0
"""Requests per second: faster than the engine serves them, so the queue and the cache fill up."""
CANCEL_SHARE = 0.2


@pytest.mark.soak
async def test_soak():
    rng = random.Random(20240601)
    arrivals, t = [], 0.0
    for _ in range(NUM_REQUESTS):
        t += rng.expovariate(ARRIVAL_RATE)
        arrivals.append(t)
    prompts = [[rng.randrange(1, 1000) for _ in range(rng.randint(1, 40))] for _ in range(NUM_REQUESTS)]
    max_tokens = [rng.randint(1, 24) for _ in range(NUM_REQUESTS)]
    # (how, when): "break" out of the stream after `when` tokens, "cancel" its task or "abort" it `when`
    # seconds after it arrives (about its expected lifetime: some land before it is added or after it
    # ended, which must be harmless)
    plans: list[tuple[str, float] | None] = [None] * NUM_REQUESTS
    for i in rng.sample(range(NUM_REQUESTS), int(NUM_REQUESTS * CANCEL_SHARE)):
        how = rng.choice(("break", "cancel", "abort"))
        plans[i] = (how, rng.randrange(max_tokens[i]) if how == "break" else rng.uniform(0, 0.01))
    loop = asyncio.get_running_loop()
    aborts: list[asyncio.Task] = []

    async def client(i: int, engine) -> tuple[list[int], str | None]:
        await asyncio.sleep(arrivals[i])
        plan = plans[i]
        if plan is not None and plan[0] == "abort":
            loop.call_later(plan[1], lambda: aborts.append(loop.create_task(engine.abort(f"r{i}"))))
        tokens, reason = [], None
        async for out in engine.generate(prompts[i], SamplingParams(max_tokens=max_tokens[i]), request_id=f"r{i}"):
            tokens.extend(out.token_ids)
            reason = out.finish_reason
            if plan is not None and plan[0] == "break" and len(tokens) >= plan[1]:
                break  # the stream is left to the garbage collector, which closes it
        return tokens, reason

    async with asyncio.timeout(60 + NUM_REQUESTS / 10):
        async with fake_engine(num_kv_blocks=16, block_size=8, token_budget=64, max_num_seqs=32) as engine:
            tasks = [asyncio.create_task(client(i, engine)) for i in range(NUM_REQUESTS)]
            for i, plan in enumerate(plans):
                if plan is not None and plan[0] == "cancel":
                    loop.call_later(arrivals[i] + plan[1], tasks[i].cancel)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*aborts)
            await wait_for(lambda: not list(engine._parts.live), timeout=5)  # a stream broken out of closes a moment later
            stats = engine.stats()
            assert (stats.num_waiting, stats.num_running) == (0, 0)
            assert stats.kv_blocks_free == stats.kv_blocks_total
            assert stats.num_preemptions > 0
            assert not list(engine._parts.live)  # no stream left open

    cut = Counter()  # requests that ended early, by how: each way of leaving must have been exercised
    for i, result in enumerate(results):
        if isinstance(result, asyncio.CancelledError):
            assert plans[i] is not None and plans[i][0] == "cancel"
            cut["cancel"] += 1
            continue
        assert not isinstance(result, BaseException), f"r{i}: {result!r}"
        tokens, reason = result
        expected = reference_tokens(prompts[i], max_tokens[i])
        if plans[i] is None:
            assert (tokens, reason) == (expected, "length"), f"r{i}"
        else:
            assert tokens == expected[: len(tokens)], f"r{i}"
            cut[plans[i][0]] += reason != "length"
    assert min(cut[how] for how in ("break", "cancel", "abort")) > 0, cut
