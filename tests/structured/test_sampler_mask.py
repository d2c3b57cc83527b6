"""The sampler's grammar mask: a masked row samples only tokens its bitmask allows, greedy or not, with
penalties after the mask; rows without a mask sample exactly as before; logprobs stay the raw model's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sarathi_models.sampler import Sampler, apply_allowed_tokens
from sarathi_sdk import DecodeSlot, SamplingParams, TokenHistory

VOCAB = 70  # not a multiple of 32: the mask's last word covers tokens past the vocabulary


@pytest.fixture(autouse=True, params=["kernels", "torch"])
def mask_path(request, monkeypatch):
    """Each test on the CPU kernels' `mask_disallowed_` and on the torch fallback."""
    if request.param == "torch":
        monkeypatch.setattr("sarathi_models.sampler.kernels", lambda: None)
    return request.param


def mask_of(tokens, words: int = 3) -> np.ndarray:
    """int32 [words] with the bits of `tokens` set."""
    bits = np.zeros(words * 32, dtype=np.uint8)
    bits[list(tokens)] = 1
    return np.packbits(bits, bitorder="little").view(np.int32)


def row(request_id: str, allowed=None, **params) -> DecodeSlot:
    history = TokenHistory((1, 2), (3,)) if params.get("repetition_penalty", 1.0) != 1.0 else None
    return DecodeSlot(request_id, 1, 5, (0,), SamplingParams(**params), history=history, allowed_tokens=allowed)


def test_greedy_takes_the_best_allowed_token_and_unmasked_rows_are_untouched():
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(0))  # [2, V]
    rows = [row("a", mask_of([3, 65]), temperature=0), row("b", temperature=0)]
    out = Sampler()(logits.clone(), rows)
    best_allowed = 3 if logits[0, 3] > logits[0, 65] else 65
    assert out.token_ids == [best_allowed, int(logits[1].argmax())]


def test_random_sampling_never_leaves_the_mask():
    logits = torch.zeros(1, VOCAB)  # [1, V]: every token equally likely
    sampler = Sampler(seed=1)
    drawn = {sampler(logits.clone(), [row("a", mask_of([7, 40, 69]), temperature=1.0)]).token_ids[0]
             for _ in range(200)}
    assert drawn == {7, 40, 69}


def test_tokens_past_the_masks_words_are_not_allowed():
    logits = torch.zeros(1, 100)  # [1, 100]: a model vocabulary wider than the tokenizer's 96
    logits[0, 99] = 10.0
    masked = apply_allowed_tokens(logits, [row("a", mask_of([5]))])
    assert int(masked[0].argmax()) == 5 and torch.isinf(masked[0, 96:]).all()


def test_penalties_still_apply_to_a_masked_row_and_logprobs_are_the_raw_models():
    logits = torch.zeros(1, VOCAB)  # [1, V]
    logits[0, 3], logits[0, 9] = 2.0, 1.0
    rows = [row("a", mask_of([3, 9]), temperature=0, repetition_penalty=4.0, logprobs=1)]
    out = Sampler()(logits.clone(), rows)
    assert out.token_ids == [9]  # 3 was generated before: its penalty leaves 9 the best allowed token
    assert out.logprobs[0].top[0][0] == 3  # the raw distribution's best token
