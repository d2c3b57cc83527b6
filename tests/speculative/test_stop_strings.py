"""A stop string that ends inside a verified run of tokens: the text, tokens and finish are those of
decoding one token a step (a tiny random Llama with a real tokenizer, and a proposer replaying the
answer, so every proposed token is accepted and the run is long)."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, RequestOutput, SamplingParams, hookimpl
from tests.structured.tiny import tiny_folder as make_tiny_folder

PROMPT = "def main():\n    return json.dumps(value, indent=2)\n" * 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_folder(tmp_path_factory.mktemp("speculative-tiny"))


class ReplayPlugin:
    """Proposes the known answer's next tokens."""

    runs_on_worker_thread = False

    def __init__(self, answer: tuple[int, ...]) -> None:
        self.answer = answer
        self.proposals: list[tuple[int, ...]] = []

    @hookimpl
    def sarathi_register_proposers(self, register):
        register("replay", lambda config, argument, make_backend: self)

    def propose(self, requests, num_tokens):
        proposals = [self.answer[len(r.output_token_ids) : len(r.output_token_ids) + k]
                     for r, k in zip(requests, num_tokens)]
        self.proposals += proposals
        return proposals

    def close(self):
        pass


async def deltas(folder, params, plugin=None):
    options = {"plugins": [plugin], "speculative": "replay", "num_speculative_tokens": 8} if plugin else {}
    async with asyncio.timeout(60):
        async with Engine(str(folder), dtype="float32", **options) as engine:
            return [out async for out in engine.generate(PROMPT, params)]


async def test_a_stop_string_inside_an_accepted_run_ends_the_text_where_it_would_without(folder):
    greedy = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)
    one_by_one = await deltas(folder, greedy)  # one token a delta: each token's own text
    free = RequestOutput.concat(one_by_one)
    runs = await deltas(folder, greedy, ReplayPlugin(free.token_ids))  # one delta per step: a verified run each
    prefix = ["".join(d.text for d in one_by_one[:j]) for j in range(len(one_by_one) + 1)]
    start, stop, end = 0, None, 0
    for run in runs:  # a stop string completed by a run's second token, so the run goes on past it
        text = prefix[start + 2]
        if len(run.token_ids) >= 3 and len(text) > len(prefix[start + 1]) and "\ufffd" not in text[-3:]:
            if text[-3:] not in text[:-1]:
                stop, end = text[-3:], start + 2
                break
        start += len(run.token_ids)
    assert stop is not None
    params = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True, stop=[stop])
    want = RequestOutput.concat(await deltas(folder, params))
    got = RequestOutput.concat(await deltas(folder, params, ReplayPlugin(free.token_ids)))
    assert (got.text, got.token_ids, got.finish_reason) == (want.text, want.token_ids, "stop")
    assert got.text == prefix[end][:-3] and got.token_ids == free.token_ids[:end]
    assert got.metrics.num_generated_tokens == end
