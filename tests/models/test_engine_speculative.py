"""Speculative decoding through a live engine on a tiny real model: the same tokens as without it."""

from __future__ import annotations

import asyncio

import pytest
import torch

from sarathi_sdk import Engine, SamplingParams

# Repeating prompts give the n-gram proposer something to copy; the random model loops on its own too.
PROMPTS = [[(7 * i + 3) % 256 for i in range(n)] for n in (9, 40)] + [[5, 6, 7, 8, 9] * 10, [3, 1, 4, 1, 5, 9] * 4]
POLICIES = ("sarathi", "vllm", "orca", "static")


async def run(checkpoint, params, *, speculative=None, prompts=PROMPTS, **options):
    options = {"token_budget": 64, "max_num_seqs": 4, "dtype": "float32", "block_size": 4, **options}
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), speculative=speculative, **options) as engine:
            outputs = await asyncio.gather(*(engine.complete(p, params) for p in prompts))
            stats = engine.stats()
    assert stats.kv_blocks_free == stats.kv_blocks_total
    return outputs, stats


GREEDY = SamplingParams(max_tokens=37, temperature=0, ignore_eos=True)


@pytest.mark.parametrize("scheduler", POLICIES)
@pytest.mark.parametrize("token_budget", [7, 64])
async def test_greedy_tokens_are_the_same_with_ngram_speculation(checkpoint, scheduler, token_budget):
    budget = {"token_budget": token_budget, "max_num_seqs": min(4, token_budget)}
    off, _ = await run(checkpoint, GREEDY, scheduler=scheduler, **budget)
    on, stats = await run(checkpoint, GREEDY, speculative="ngram", scheduler=scheduler, **budget)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert all(len(o.token_ids) == GREEDY.max_tokens for o in on)  # max_tokens cuts a verified run
    assert 0 < stats.num_accepted_tokens <= stats.num_proposed_tokens
    assert stats.num_steps < sum(len(o.token_ids) for o in on)  # steps made several tokens


async def test_a_draft_model_proposes_and_the_tokens_stay_the_same(checkpoint):
    off, _ = await run(checkpoint, GREEDY)
    on, stats = await run(checkpoint, GREEDY, speculative=f"draft:{checkpoint('llama')}", num_speculative_tokens=3)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    # the draft is the model itself: every proposed token is what the model writes
    assert stats.num_accepted_tokens == stats.num_proposed_tokens > 0


async def test_logprobs_of_accepted_tokens_are_those_of_decoding_without_speculation(checkpoint):
    params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True, logprobs=2)
    off, _ = await run(checkpoint, params)
    on, stats = await run(checkpoint, params, speculative="ngram")
    assert stats.num_accepted_tokens > 0
    for a, b in zip(on, off):
        assert a.token_ids == b.token_ids and len(a.logprobs) == len(b.logprobs) == 20
        for x, y in zip(a.logprobs, b.logprobs):
            assert x.token_id == y.token_id and [t for t, _ in x.top] == [t for t, _ in y.top]
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)


async def test_preemption_and_prefix_caching_keep_the_tokens(checkpoint):
    off, _ = await run(checkpoint, GREEDY)
    on, stats = await run(checkpoint, GREEDY, speculative="ngram", num_kv_blocks=40, enable_prefix_caching=True)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert stats.num_preemptions > 0 and stats.num_accepted_tokens > 0


async def test_seeded_sampling_gives_the_very_tokens_of_decoding_without_speculation(checkpoint):
    params = SamplingParams(max_tokens=30, temperature=0.3, seed=7, ignore_eos=True)
    off, _ = await run(checkpoint, params)
    on, stats = await run(checkpoint, params, speculative="ngram")
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert stats.num_proposed_tokens > 0


async def test_aborting_a_request_mid_verification_frees_its_blocks(checkpoint):
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), speculative="ngram", dtype="float32", block_size=4) as engine:
            stream = engine.generate(PROMPTS[2], SamplingParams(max_tokens=200, temperature=0, ignore_eos=True))
            async for _ in stream:
                if engine.stats().num_proposed_tokens > 8:
                    break  # leaving the stream aborts it, while its next verification may be in flight
            await stream.aclose()
            for _ in range(50):
                stats = engine.stats()
                if stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total:
                    break
                await asyncio.sleep(0.01)
            assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
            # the engine goes on serving, with speculation
            out = await engine.complete(PROMPTS[3], GREEDY)
            assert len(out.token_ids) == GREEDY.max_tokens


def chi_squared_p(a: list[int], b: list[int]) -> float:
    """p-value of the two-sample chi-squared test that `a` and `b` come from one distribution (tokens
    seen fewer than 10 times in both pooled into one bin)."""
    tokens = sorted(set(a) | set(b))
    ca = torch.tensor([a.count(t) for t in tokens], dtype=torch.float64)
    cb = torch.tensor([b.count(t) for t in tokens], dtype=torch.float64)
    rare = (ca + cb) < 10
    ca = torch.cat([ca[~rare], ca[rare].sum()[None]])
    cb = torch.cat([cb[~rare], cb[rare].sum()[None]])
    keep = (ca + cb) > 0
    ca, cb = ca[keep], cb[keep]
    total = ca + cb
    ea, eb = total * ca.sum() / total.sum(), total * cb.sum() / total.sum()
    statistic = (((ca - ea) ** 2) / ea + ((cb - eb) ** 2) / eb).sum()
    dof = len(total) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), statistic / 2))


async def test_sampled_tokens_keep_their_distribution_under_rejection_sampling(checkpoint):
    prompt = [1, 2, 3, 4] * 6 + [1, 2]
    params = SamplingParams(max_tokens=3, temperature=0.3, ignore_eos=True)
    options = {"token_budget": 64, "max_num_seqs": 4}  # few decodes a step: the rule lets them speculate
    off, _ = await run(checkpoint, params, prompts=[prompt] * 2000, **options)
    # the model as its own draft proposes its greedy token: accepted with the probability the model
    # gives it at this temperature, else the token is drawn again without it
    draft = f"draft:{checkpoint('llama')}"
    on, stats = await run(checkpoint, params, prompts=[prompt] * 2000, speculative=draft, **options)
    assert 0 < stats.num_accepted_tokens < stats.num_proposed_tokens  # both branches taken
    for position in (1, 2):  # the decode's own sample, and the one after an accepted proposed token
        p = chi_squared_p([o.token_ids[position] for o in on], [o.token_ids[position] for o in off])
        assert p > 0.01, (position, p)


async def test_penalties_see_the_proposed_tokens_before_each_position(checkpoint):
    params = SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, repetition_penalty=1.3,
                            frequency_penalty=0.2)
    off, _ = await run(checkpoint, params)
    on, stats = await run(checkpoint, params, speculative=f"draft:{checkpoint('llama')}")
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert stats.num_accepted_tokens > 0
