"""Greedy agreement: a fixed set of chat prompts, the greedy tokens an engine gives for them, and the
share two runs agree on.

One measure serves two readers: the quantized-model test (`tests/gguf/test_quantized_default_model.py`)
holds the quantized kernels against fp32 with it, and `bench.cpu --isa` holds the kernel builds of each
ISA level against each other. Imports only the public API and the benchmark's own modules.
"""

from __future__ import annotations

import os
from typing import Any

from .. import Engine, SamplingParams
from .tasks import gather

NUM_PROMPTS, NUM_TOKENS = 32, 32
TOPICS = ["the sea", "a robot", "bread", "Paris", "winter", "a cat", "music", "the moon"]
STYLES = ["Write a sentence about", "Tell me a fact about", "Describe", "Give me a word for"]
PROMPTS = [
    [{"role": "user", "content": f"{style} {topic}."}] for style in STYLES for topic in TOPICS
][:NUM_PROMPTS]


async def greedy_tokens(model: str | os.PathLike[str] | None, **options: Any) -> list[list[int]]:
    """The first NUM_TOKENS greedy tokens (EOS ignored) of every prompt, through the model's chat
    template, on an engine with `options`."""
    params = SamplingParams(max_tokens=NUM_TOKENS, temperature=0, ignore_eos=True)
    async with Engine(None if model is None else os.fspath(model), **options) as engine:
        tokenizer = engine.tokenizer
        if tokenizer is None:
            raise ValueError("greedy agreement needs a model with a tokenizer (the prompts are chat messages)")
        outputs = await gather(*(engine.complete(tokenizer.apply_chat_template(m), params) for m in PROMPTS))
    return [list(o.token_ids) for o in outputs]


def agreement(ours: list[list[int]], reference: list[list[int]]) -> float:
    """The share of the NUM_PROMPTS x NUM_TOKENS tokens equal to the reference's, counted per prompt
    up to its first divergence: after it the two runs continue different texts, so later equal tokens
    would be chance. Symmetric in its two arguments."""
    agreed = 0
    for mine, theirs in zip(ours, reference):
        for a, b in zip(mine, theirs):
            if a != b:
                break
            agreed += 1
    return agreed / (NUM_PROMPTS * NUM_TOKENS)
