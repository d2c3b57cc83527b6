"""Structured outputs with speculative decoding: every proposed position gets the mask the grammar
gives after the proposed tokens before it, so the output is token for token what it is without."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams, hookimpl
from tests.structured.recorder import Recorder
from tests.structured.test_structured_engine import CONSTRAINTS, PROMPT, TIMEOUT


class Replay:
    """Proposes each request's known output (from a run without speculation), every third proposed
    token replaced by its neighbour in the vocabulary: a proposal the grammar mostly refuses there."""

    runs_on_worker_thread = False

    def __init__(self, known: dict[tuple[str, int], tuple[int, ...]]) -> None:
        self.known = known

    def propose(self, requests, num_tokens):
        proposals = []
        for request, k in zip(requests, num_tokens):
            params = request.sampling_params
            tokens = self.known[(repr(params.structured_outputs), params.seed)]
            start = len(request.output_token_ids)
            proposal = list(tokens[start : start + k])
            for i in range(2, len(proposal), 3):
                proposal[i] += 1
            proposals.append(tuple(proposal))
        return proposals

    def close(self) -> None:
        pass


class ReplayPlugin:
    def __init__(self, known) -> None:
        self.known = known

    @hookimpl
    def sarathi_register_proposers(self, register):
        register("replay", lambda config, argument, make_backend: Replay(self.known))


async def outputs(folder, temperature, plugins=(), **options):
    recorder = Recorder()
    requests = [(params, seed) for params, _ in CONSTRAINTS.values() for seed in (1, 2)]
    async with asyncio.timeout(TIMEOUT):
        async with Engine(str(folder), dtype="float32", plugins=[recorder, *plugins], token_budget=64,
                          max_num_seqs=4, **options) as engine:
            results = await asyncio.gather(*(
                engine.complete(PROMPT, SamplingParams(max_tokens=40, temperature=temperature, seed=seed,
                                                       structured_outputs=params))
                for params, seed in requests))
            stats = engine.stats()
    assert recorder.live_matchers() == 0
    known = {(repr(params), seed): out.token_ids for (params, seed), out in zip(requests, results)}
    return results, stats, known


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_proposals_the_grammar_refuses_leave_every_constrained_output_unchanged(tiny_folder, temperature):
    off, _, known = await outputs(tiny_folder, temperature)
    on, stats, _ = await outputs(tiny_folder, temperature, [ReplayPlugin(known)], speculative="replay",
                                 num_speculative_tokens=4, speculative_disable_by_batch_size=None)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert 0 < stats.num_accepted_tokens < stats.num_proposed_tokens
    for (_, check), out in zip([c for c in CONSTRAINTS.values() for _ in (1, 2)], on):
        if out.finish_reason == "stop":
            check(out.text)


async def test_a_draft_model_blind_to_the_grammar_leaves_the_outputs_unchanged(tiny_folder):
    # the model as its own draft, without the grammar: it proposes unconstrained greedy tokens
    off, _, _ = await outputs(tiny_folder, 0.0)
    on, stats, _ = await outputs(tiny_folder, 0.0, speculative=f"draft:{tiny_folder}",
                                 speculative_disable_by_batch_size=None)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    assert stats.num_proposed_tokens > 0
