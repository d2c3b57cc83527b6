"""Logprobs and penalties travel from SamplingParams through the batch to the sampler and back."""

from __future__ import annotations

import asyncio

import torch

from sarathi_sdk import Engine, SamplingParams

PROMPT = [(13 * i + 7) % 256 for i in range(19)]


async def complete(checkpoint, params: SamplingParams):
    async with asyncio.timeout(120):
        async with Engine(str(checkpoint("llama")), token_budget=8, dtype="float32", block_size=4) as engine:
            return await engine.complete(PROMPT, params)


async def test_logprobs_are_the_models_log_softmax(checkpoint, reference):
    out = await complete(checkpoint, SamplingParams(max_tokens=6, temperature=0, logprobs=3, ignore_eos=True))
    assert len(out.logprobs) == len(out.token_ids) == 6
    ids = torch.tensor([PROMPT + list(out.token_ids)])
    with torch.no_grad():
        want = torch.log_softmax(reference("llama")(ids).logits[0].float(), dim=-1)  # [L, V]
    for i, (token, lp) in enumerate(zip(out.token_ids, out.logprobs)):
        row = want[len(PROMPT) - 1 + i]  # [V]
        assert lp.token_id == token and len(lp.top) == 3
        assert lp.top[0][0] == token  # greedy: the sampled token is the most likely one
        assert abs(lp.logprob - row[token].item()) < 1e-4
        assert [t for t, _ in lp.top] == row.topk(3).indices.tolist()


async def test_repetition_penalty_matches_hf(checkpoint, reference):
    params = SamplingParams(max_tokens=16, temperature=0, repetition_penalty=1.5, ignore_eos=True)
    out = await complete(checkpoint, params)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        want = reference("llama").generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                           max_new_tokens=16, repetition_penalty=1.5, pad_token_id=0)
    assert list(out.token_ids) == want[0, len(PROMPT):].tolist()
