"""Through the real Engine on a random tiny Llama saved by transformers: every policy gives the same
greedy tokens. Batch composition (chunk boundaries, mixed or phase-pure steps, preemption and
recompute) must never change what a model computes, up to fp32 rounding too small to flip an argmax."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.models.helpers import save_tiny
from tests.scheduling.strategies import SCHEDULERS

PROMPTS = [[(11 * i + 5) % 256 for i in range(n)] for n in (5, 37, 70, 12)]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("policies") / "llama", "LlamaForCausalLM", seed=1)


async def greedy(folder, scheduler: str, **options) -> list[list[int]]:
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(folder), scheduler=scheduler, dtype="float32", block_size=4, **options) as engine:
            outputs = await asyncio.gather(*(engine.complete(p, params) for p in PROMPTS))
    return [list(o.token_ids) for o in outputs]


@pytest.mark.parametrize(
    "options",
    [{"token_budget": 16, "max_num_seqs": 4}, {"token_budget": 48, "max_num_seqs": 3, "num_kv_blocks": 30}],
    ids=["chunked", "preempting"],
)
async def test_all_policies_give_identical_greedy_tokens(tiny_llama, options):
    results = {scheduler: await greedy(tiny_llama, scheduler, **options) for scheduler in SCHEDULERS}
    for scheduler in SCHEDULERS:
        assert results[scheduler] == results["sarathi"], scheduler
