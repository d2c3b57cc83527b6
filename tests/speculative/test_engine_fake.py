"""Speculative decoding through a live engine on `FakeBackend`, with a proposer plugin that knows
exactly what the fake model will write: which tokens are accepted is then up to the test."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from sarathi_sdk import ConfigError, Engine, Request, SamplingParams, hookimpl
from sarathi_sdk.testing import FakeBackend

VOCAB = 1000
POLICIES = ("sarathi", "vllm", "orca", "static")


def fake_next(context: list[int]) -> int:
    """The token FakeBackend writes after `context` (its hash of the context)."""
    digest = hashlib.blake2b(repr(context).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % VOCAB


class OracleProposer:
    """Proposes the fake model's own next tokens, the `wrong_at`-th (0-based) replaced by another."""

    runs_on_worker_thread = False

    def __init__(self, wrong_at: int | None = None) -> None:
        self.wrong_at = wrong_at

    def propose(self, requests: list[Request], num_tokens: list[int]) -> list[tuple[int, ...]]:
        proposals = []
        for request, k in zip(requests, num_tokens):
            context = list(request.prompt_token_ids) + request.output_token_ids
            proposal = []
            for i in range(k):
                token = fake_next(context)
                if i == self.wrong_at:
                    token = (token + 1) % VOCAB
                proposal.append(token)
                context.append(token)
            proposals.append(tuple(proposal))
        return proposals

    def close(self) -> None:
        pass


class OraclePlugin:
    def __init__(self, wrong_at: int | None = None) -> None:
        self.wrong_at = wrong_at

    @hookimpl
    def sarathi_register_proposers(self, register) -> None:
        register("oracle", lambda config, argument, make_backend: OracleProposer(self.wrong_at))


PROMPTS = [[(11 * i + j) % VOCAB for i in range(n)] for j, n in enumerate((5, 30, 17))]


async def run(params, *, speculative=None, wrong_at=None, prompts=PROMPTS, backend=None, **options):
    backend = backend or FakeBackend(vocab_size=VOCAB)
    options = {"token_budget": 32, "block_size": 4, "num_speculative_tokens": 4, **options}
    async with asyncio.timeout(30):
        async with Engine(backend=backend, speculative=speculative, plugins=[OraclePlugin(wrong_at)],
                          **options) as engine:
            outputs = await asyncio.gather(*(engine.complete(p, params) for p in prompts))
            stats = engine.stats()
    assert stats.kv_blocks_free == stats.kv_blocks_total
    return outputs, stats, backend


PARAMS = SamplingParams(max_tokens=23, temperature=0, ignore_eos=True)


@pytest.mark.parametrize("scheduler", POLICIES)
@pytest.mark.parametrize("wrong_at", [None, 2])
async def test_every_policy_gives_the_same_tokens_and_counts_what_it_accepted(scheduler, wrong_at):
    off, _, _ = await run(PARAMS, scheduler=scheduler)
    on, stats, backend = await run(PARAMS, speculative="oracle", wrong_at=wrong_at, scheduler=scheduler)
    assert [o.token_ids for o in on] == [o.token_ids for o in off]
    verified = [(len(s.proposal)) for b in backend.batches for s in b.decodes if s.proposal]
    assert stats.num_proposed_tokens == sum(verified) > 0
    want = sum(verified) if wrong_at is None else sum(min(n, wrong_at) for n in verified)
    assert stats.num_accepted_tokens == want
    if scheduler != "static":  # static batching has no token budget; orca's holds for decodes only
        assert all(b.num_tokens <= 32 for b in backend.batches if scheduler != "orca" or not b.prefills)


async def test_a_stop_token_inside_an_accepted_run_ends_the_request_there():
    off, _, _ = await run(PARAMS, prompts=PROMPTS[:1])
    tokens = off[0].token_ids
    on_all, _, backend = await run(PARAMS, speculative="oracle", prompts=PROMPTS[:1])
    runs = [s.proposal for b in backend.batches for s in b.decodes if len(s.proposal) >= 3]
    inside = runs[-1][1]  # the middle of a verified run
    stop = SamplingParams(max_tokens=23, temperature=0, stop_token_ids=[inside])
    got, stats, backend = await run(stop, speculative="oracle", prompts=PROMPTS[:1])
    assert got[0].token_ids == tokens[: tokens.index(inside) + 1] == on_all[0].token_ids[: tokens.index(inside) + 1]
    assert got[0].finish_reason == "stop"
    assert got[0].metrics.num_generated_tokens == len(got[0].token_ids)
    last = [s for b in backend.batches for s in b.decodes][-1]
    assert inside in last.proposal[:-1]  # the run went on past the stop token


@pytest.mark.parametrize("max_tokens", [1, 2, 6, 7])
async def test_max_tokens_cuts_a_run_and_nothing_past_it_is_ever_written(max_tokens):
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    prompt = PROMPTS[1]
    off, _, _ = await run(params, prompts=[prompt])
    on, _, backend = await run(params, speculative="oracle", scheduler="static", prompts=[prompt])
    assert on[0].token_ids == off[0].token_ids and len(on[0].token_ids) == max_tokens
    slots = [slot for batch in backend.batches for slot in batch.decodes]
    assert all(slot.position + len(slot.proposal) < len(prompt) + max_tokens - 1 for slot in slots)
    assert max_tokens < 3 or any(slot.proposal for slot in slots)


async def test_past_the_batch_size_rule_nothing_is_proposed():
    _, stats, _ = await run(PARAMS, speculative="oracle", speculative_disable_by_batch_size=2)
    _, stats_on, _ = await run(PARAMS, speculative="oracle", speculative_disable_by_batch_size=3)
    assert stats_on.num_proposed_tokens > 0
    assert stats.num_proposed_tokens < stats_on.num_proposed_tokens  # only once requests have finished


async def test_a_budget_without_room_verifies_no_proposal():
    _, stats, backend = await run(PARAMS, speculative="oracle", token_budget=3, max_num_seqs=3)
    assert all(b.num_tokens <= 3 for b in backend.batches)
    assert stats.num_proposed_tokens > 0  # once requests finished, room came back


async def test_abort_mid_verification_and_preemption_free_every_block():
    backend = FakeBackend(vocab_size=VOCAB, step_delay=0.002)
    params = SamplingParams(max_tokens=60, temperature=0, ignore_eos=True)
    async with asyncio.timeout(30):
        async with Engine(backend=backend, speculative="oracle", plugins=[OraclePlugin(1)], block_size=4,
                          num_kv_blocks=30, token_budget=32) as engine:
            stream = engine.generate(PROMPTS[1], params)
            others = [asyncio.ensure_future(engine.complete(p, params)) for p in (PROMPTS[0], PROMPTS[2])]
            async for _ in stream:
                if engine.stats().num_proposed_tokens > 10:
                    break
            await stream.aclose()
            outputs = await asyncio.gather(*others)
            stats = engine.stats()
    assert all(len(o.token_ids) == 60 for o in outputs)
    assert stats.num_preemptions > 0
    assert stats.kv_blocks_free == stats.kv_blocks_total


@pytest.mark.parametrize(("speculative", "words"), [("nope", "unknown speculative proposer 'nope'"),
                                                    ("ngram:3", "takes no argument"),
                                                    ("draft", "needs the draft model's")])
async def test_an_unknown_or_malformed_proposer_fails_at_start(speculative, words):
    engine = Engine(backend=FakeBackend(), speculative=speculative)
    with pytest.raises(ConfigError, match=words):
        await engine.start()
