"""The sampler on hand-made logits: determinism, support restriction, penalties, logprobs."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.penalties import apply_penalties
from sarathi_models.sampler import Sampler
from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, TokenHistory

VOCAB = 50
LOGITS = torch.randn(VOCAB, generator=torch.Generator().manual_seed(0)) * 2  # [V]


def decode(rid: str, position: int = 10, history: TokenHistory | None = None, **params) -> DecodeSlot:
    return DecodeSlot(rid, 1, position, (0,), SamplingParams(**params), history)


def support(params: dict, logits: torch.Tensor = LOGITS, draws: int = 400) -> set[int]:
    """Tokens drawn for one row over many seeds."""
    rows = [decode(f"r{s}", seed=s, **params) for s in range(draws)]
    return set(Sampler()(logits.expand(draws, -1).clone(), rows).token_ids)


def test_greedy_takes_the_argmax():
    assert Sampler()(LOGITS[None].clone(), [decode("a", temperature=0)]).token_ids == [int(LOGITS.argmax())]


def test_seeded_token_is_the_same_whatever_else_is_in_the_batch():
    target = decode("target", position=17, seed=1234, temperature=0.8, top_p=0.9)
    others = [decode(f"o{i}", position=i, seed=i, temperature=1.3) for i in range(5)]
    others += [decode("greedy", temperature=0), decode("unseeded", temperature=1.0)]
    other_logits = torch.randn(len(others), VOCAB, generator=torch.Generator().manual_seed(1))
    alone = Sampler()(LOGITS[None].clone(), [target]).token_ids[0]
    for sampler_seed in (0, 99):
        mixed = Sampler(sampler_seed)(torch.cat([other_logits[:3], LOGITS[None], other_logits[3:]]),
                                      others[:3] + [target] + others[3:])
        assert mixed.token_ids[3] == alone


def test_a_prefill_ending_where_a_decode_stands_samples_the_same_token():
    """Preemption by recompute re-samples a position through a prefill chunk: same seed, same token."""
    params = SamplingParams(seed=5, temperature=1.0)
    for position in range(20):
        as_decode = DecodeSlot("a", 1, position, (0,), params)
        as_chunk = PrefillChunk("a", tuple(range(position + 1)), 0, (0,), True, params)
        as_late_chunk = PrefillChunk("a", (1, 2), position - 1, (0,), True, params)
        tokens = Sampler()(LOGITS.expand(3, -1).clone(), [as_decode, as_chunk, as_late_chunk]).token_ids
        assert len(set(tokens)) == 1


def test_seeded_draws_follow_the_softmax_distribution():
    draws = 4000
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    rows = [decode("r", position=p, seed=7) for p in range(draws)]
    tokens = torch.tensor(Sampler()(logits.expand(draws, -1).clone(), rows).token_ids)
    frequencies = torch.bincount(tokens, minlength=4).float() / draws
    torch.testing.assert_close(frequencies, torch.softmax(logits, -1), atol=0.03, rtol=0)


def test_unseeded_requests_follow_the_engine_seed():
    rows = [decode(f"r{i}") for i in range(30)]
    first = Sampler(seed=3)(LOGITS.expand(30, -1).clone(), rows).token_ids
    assert Sampler(seed=3)(LOGITS.expand(30, -1).clone(), rows).token_ids == first
    assert Sampler(seed=4)(LOGITS.expand(30, -1).clone(), rows).token_ids != first


def test_top_k_keeps_the_k_best():
    assert support({"top_k": 3}) == set(LOGITS.topk(3).indices.tolist())


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs, order = torch.softmax(LOGITS, -1).sort(descending=True)
    keep = int((probs.cumsum(0) < 0.6).sum()) + 1
    assert support({"top_p": 0.6}) == set(order[:keep].tolist())


def test_min_p_drops_tokens_below_min_p_times_the_top_probability():
    probs = torch.softmax(LOGITS / 0.7, -1)
    expected = set(torch.nonzero(probs >= 0.1 * probs.max()).flatten().tolist())
    assert support({"min_p": 0.1, "temperature": 0.7}) == expected


def test_top_k_and_top_p_combine():
    probs = torch.softmax(LOGITS.topk(5).values, -1)
    keep = int((probs.cumsum(0) < 0.5).sum()) + 1
    assert support({"top_k": 5, "top_p": 0.5}) == set(LOGITS.topk(5).indices[:keep].tolist())


def reference_penalties(logits, prompt, output, repetition, presence, frequency):
    """The vLLM / HF definitions, one token at a time."""
    out = logits.clone()
    for token in set(prompt) | set(output):
        out[token] = out[token] / repetition if out[token] > 0 else out[token] * repetition
    for token in set(output):
        out[token] -= frequency * output.count(token) + presence
    return out


def test_penalties_match_the_reference_definition():
    histories = [
        TokenHistory((1, 2, 3, 3), (4, 4, 4, 2)),
        TokenHistory((5, 6), ()),
        TokenHistory((7,), (7, 8, 9, 9)),
    ]
    settings = [(1.3, 0.5, 0.25), (0.8, 0.0, 0.0), (1.0, -0.5, 1.5)]
    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(2))
    rows = [
        decode(f"r{i}", history=h, repetition_penalty=r, presence_penalty=p, frequency_penalty=f)
        for i, (h, (r, p, f)) in enumerate(zip(histories, settings))
    ] + [decode("plain")]
    got = apply_penalties(logits, rows)
    for i, (h, (r, p, f)) in enumerate(zip(histories, settings)):
        want = reference_penalties(logits[i], list(h.prompt_token_ids), list(h.output_token_ids), r, p, f)
        torch.testing.assert_close(got[i], want)
    torch.testing.assert_close(got[3], logits[3])


def test_greedy_with_a_repetition_penalty_avoids_the_repeated_token():
    top = int(LOGITS.argmax())
    row = decode("a", history=TokenHistory((top,), ()), temperature=0, repetition_penalty=100.0)
    token = Sampler()(LOGITS[None].clone(), [row]).token_ids[0]
    assert token != top and token == int(LOGITS.topk(2).indices[1])


def test_a_penalty_without_history_is_refused():
    with pytest.raises(ValueError, match="history"):
        Sampler()(LOGITS[None].clone(), [decode("a", presence_penalty=1.0)])


def test_logprobs_are_log_softmax_of_the_raw_logits():
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(4))
    rows = [decode("a", seed=1, logprobs=5, temperature=0.5), decode("b"), decode("c", temperature=0, logprobs=0)]
    out = Sampler()(logits, rows)
    expected = torch.log_softmax(logits, -1)
    assert out.logprobs[1] is None
    for i in (0, 2):
        lp = out.logprobs[i]
        assert lp.token_id == out.token_ids[i]
        assert lp.logprob == pytest.approx(float(expected[i, lp.token_id]), abs=1e-6)
    top = out.logprobs[0].top
    assert [t for t, _ in top] == expected[0].topk(5).indices.tolist()
    assert [v for _, v in top] == pytest.approx(expected[0].topk(5).values.tolist(), abs=1e-6)
    assert out.logprobs[2].top == ()


def test_a_uniform_at_the_top_of_the_range_draws_an_allowed_token(monkeypatch):
    """A uniform that rounds to 1.0 in fp32 must not fall off the CDF onto a masked token."""
    monkeypatch.setattr("sarathi_models.sampler.seeded_uniform", lambda seed, position: 1.0 - 2.0**-30)
    logits = torch.tensor([0.0, 5.0, 1.0, -3.0])
    token = Sampler()(logits[None].clone(), [decode("a", seed=1, top_k=2)]).token_ids[0]
    assert token == 2  # the last token of the top-2 in vocabulary order
