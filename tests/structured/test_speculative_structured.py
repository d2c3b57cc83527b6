"""Structured outputs with speculative decoding: every proposed position gets the mask the grammar
gives after the proposed tokens before it, so the output is token for token what it is without."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.structured.recorder import Recorder
from tests.structured.test_structured_engine import CONSTRAINTS, PROMPT, TIMEOUT


async def outputs(folder, speculative, temperature, **options):
    recorder = Recorder()
    async with asyncio.timeout(TIMEOUT):
        async with Engine(str(folder), dtype="float32", plugins=[recorder], speculative=speculative,
                          token_budget=64, max_num_seqs=4, **options) as engine:
            results = await asyncio.gather(*(
                engine.complete(PROMPT, SamplingParams(max_tokens=40, temperature=temperature, seed=seed,
                                                       structured_outputs=params))
                for params, _ in CONSTRAINTS.values() for seed in (1, 2)))
            stats = engine.stats()
    assert recorder.live_matchers() == 0
    return results, stats


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_a_draft_model_blind_to_the_grammar_leaves_every_constrained_output_unchanged(tiny_folder, temperature):
    # the model as its own draft, without the grammar: its proposals are the model's unconstrained
    # tokens, which the grammar often refuses, so masks at proposed positions decide what is kept
    off, _ = await outputs(tiny_folder, None, temperature)
    on, stats = await outputs(tiny_folder, f"draft:{tiny_folder}", temperature, speculative_disable_by_batch_size=None)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert stats.num_proposed_tokens > 0
    if temperature == 0:  # at temperature 1 this random model's draws rarely meet its greedy proposals
        assert 0 < stats.num_accepted_tokens < stats.num_proposed_tokens
    for (_, check), out in zip([c for c in CONSTRAINTS.values() for _ in (1, 2)], on):
        if out.finish_reason == "stop":
            check(out.text)
