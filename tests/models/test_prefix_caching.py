"""The prefix cache on a real (tiny, random) Llama: the same greedy tokens with `enable_prefix_caching`
on as off, for multi-turn conversations, a shared system prompt sent concurrently and sequentially,
prompts that diverge mid-block, and under forced preemption; chunks cross block boundaries (budgets
that are not multiples of the block size), and every block is back, free or cached, at the end."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams, hookimpl
from tests.models.helpers import reference_greedy

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
SYSTEM = [(13 * i + 5) % 250 + 1 for i in range(45)]
SHAPES = [(4, 16), (8, 20), (16, 32)]
"""(block_size, token_budget)."""


def engine(checkpoint, caching: bool, block_size: int, token_budget: int, **options) -> Engine:
    return Engine(str(checkpoint("llama")), dtype="float32", enable_prefix_caching=caching, block_size=block_size,
                  token_budget=token_budget, max_num_seqs=min(4, token_budget), **options)


def assert_all_blocks_back(eng: Engine) -> None:
    stats = eng.stats()
    assert stats.kv_blocks_free == stats.kv_blocks_total and stats.num_running == stats.num_waiting == 0


async def conversation(eng: Engine, turns: list[list[int]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """Each turn's prompt is the previous prompt, its answer and the next user tokens."""
    prompt: list[int] = []
    answers, cached = [], []
    for user in turns:
        prompt = prompt + user
        out = await eng.complete(prompt, GREEDY)
        answers.append(out.token_ids)
        cached.append(out.metrics.num_cached_tokens)
        prompt = prompt + list(out.token_ids)
    return answers, cached


@pytest.mark.parametrize(("block_size", "token_budget"), SHAPES)
async def test_multi_turn_conversations_give_the_same_tokens(checkpoint, block_size, token_budget):
    turns = [SYSTEM[:29], [7, 8, 9, 10, 11], [40 + i for i in range(13)], [3, 1, 4, 1, 5]]
    results = {}
    async with asyncio.timeout(120):
        for caching in (False, True):
            async with engine(checkpoint, caching, block_size, token_budget) as eng:
                results[caching] = await conversation(eng, turns)
                assert_all_blocks_back(eng)
    (off, cached_off), (on, cached_on) = results[False], results[True]
    assert on == off
    assert cached_off == [0, 0, 0, 0]
    previous = 0
    for turn, cached in enumerate(cached_on[1:], 1):
        # the last turn's prompt and answer are cached, but the answer's last token, never fed back
        context = sum(len(t) for t in turns[:turn]) + sum(len(a) for a in off[:turn]) - 1
        assert cached == context // block_size * block_size > previous
        previous = cached


@pytest.mark.parametrize(("block_size", "token_budget"), SHAPES)
async def test_a_shared_system_prompt_sent_concurrently_and_sequentially(checkpoint, reference, block_size,
                                                                         token_budget):
    prompts = [SYSTEM + [(31 * i + j) % 250 + 1 for j in range(3 + 4 * i)] for i in range(6)]
    results = {}
    async with asyncio.timeout(120):
        for caching in (False, True):
            async with engine(checkpoint, caching, block_size, token_budget) as eng:
                concurrent = await asyncio.gather(*(eng.complete(p, GREEDY) for p in prompts))
                sequential = [await eng.complete(p, GREEDY) for p in prompts]
                assert_all_blocks_back(eng)
                results[caching] = [o.token_ids for o in concurrent + sequential]
                hits = [o.metrics.num_cached_tokens for o in concurrent + sequential]
    assert results[True] == results[False]
    system = len(SYSTEM) // block_size * block_size
    # the first prompt takes each step's budget until its system prompt is computed: the others find it
    assert hits[:len(prompts)] == [0] + [system] * (len(prompts) - 1)
    assert hits[len(prompts):] == [(len(p) - 1) // block_size * block_size for p in prompts]  # their own prompts
    want = reference_greedy(reference("llama"), prompts[0], GREEDY.max_tokens)
    assert list(results[True][0]) == list(results[True][len(prompts)]) == want


@pytest.mark.parametrize(("block_size", "token_budget"), SHAPES)
async def test_prompts_diverging_mid_block_share_only_the_blocks_before(checkpoint, block_size, token_budget):
    common = SYSTEM[:block_size * 2 + block_size // 2]  # two blocks and half of the third
    prompts = [common + [(17 * i + j) % 250 + 1 for j in range(block_size + 3)] for i in range(3)]
    results = {}
    async with asyncio.timeout(120):
        for caching in (False, True):
            async with engine(checkpoint, caching, block_size, token_budget) as eng:
                outputs = [await eng.complete(p, GREEDY) for p in prompts]
                assert_all_blocks_back(eng)
                results[caching] = [o.token_ids for o in outputs]
                hits = [o.metrics.num_cached_tokens for o in outputs]
    assert results[True] == results[False]
    assert hits == [0, 2 * block_size, 2 * block_size]


class Restarts:
    """Observer: where each request's prefill restarted after a preemption (recompute)."""

    def __init__(self) -> None:
        self.next_pos: dict[str, int] = {}
        self.starts: list[int] = []

    @hookimpl
    def sarathi_on_step_end(self, batch) -> None:
        for chunk in batch.prefills:
            if chunk.start_pos < self.next_pos.get(chunk.request_id, 0):
                self.starts.append(chunk.start_pos)
            self.next_pos[chunk.request_id] = chunk.start_pos + len(chunk.token_ids)
        for slot in batch.decodes:
            self.next_pos[slot.request_id] = slot.position + 1


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm"])
async def test_forced_preemption_gives_the_same_tokens(checkpoint, scheduler):
    prompts = [SYSTEM[:20 + 3 * i] + [200 + i] * (i % 3 + 1) for i in range(6)]
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True)
    results, restarts = {}, {}
    async with asyncio.timeout(120):
        for caching in (False, True):
            restarts[caching] = Restarts()
            async with engine(checkpoint, caching, 4, 16, num_kv_blocks=24, scheduler=scheduler,
                              plugins=[restarts[caching]]) as eng:
                outputs = await asyncio.gather(*(eng.complete(p, params) for p in prompts))
                assert_all_blocks_back(eng)
                assert eng.stats().num_preemptions > 0
                results[caching] = [o.token_ids for o in outputs]
            async with engine(checkpoint, caching, 4, 16, scheduler=scheduler) as roomy:
                alone = await asyncio.gather(*(roomy.complete(p, params) for p in prompts))
                assert [o.token_ids for o in alone] == results[caching]
    assert results[True] == results[False]
    assert restarts[False].starts and set(restarts[False].starts) == {0}
    assert any(start > 0 for start in restarts[True].starts)  # resumed after its own cached blocks
