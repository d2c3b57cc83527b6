"""Prefill chunks of few rows on the default model: they never take the int8 kernel (`quant.prefill_pass`).
With int8 activations for a chunk of at most 16 rows, the chat prompt's answer at token budgets 16 and
32 was "L'Étoile, la Marseillaise," (at 32 only the three-token last chunk ran on int8), where every
budget now gives the answer whole prompts give."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.gguf.smollm2 import PARIS_QUESTION


@pytest.mark.parametrize("budget", [7, 16, 32])
async def test_small_chunks_answer_as_whole_prompts_do(smollm2_folder, budget):
    params = SamplingParams(max_tokens=12, temperature=0)
    messages = [{"role": "user", "content": PARIS_QUESTION}]
    async with asyncio.timeout(240):
        async with Engine(str(smollm2_folder), token_budget=budget) as engine:
            text = "".join([out.text async for out in engine.chat(messages, params)])
    assert text == "The capital of France is Paris."
