"""Verification of proposed tokens (`sarathi_sdk.speculative`): the rows a proposal expands into, and
which proposed tokens the samples accept."""

from __future__ import annotations

from sarathi_sdk import (
    DecodeSlot,
    PrefillChunk,
    SamplingParams,
    ScheduledBatch,
    TokenHistory,
    TokenLogprobs,
    expand_proposals,
    verify_proposals,
)

GREEDY = SamplingParams(temperature=0)


def slot(request_id: str, proposal: tuple[int, ...] = (), **fields) -> DecodeSlot:
    return DecodeSlot(request_id, 5, 10, (0, 1, 2), GREEDY, proposal=proposal, **fields)


def test_a_proposal_becomes_one_row_per_position_with_the_history_and_mask_of_that_position():
    history = TokenHistory((1, 2), (5,))
    decode = slot("a", (7, 8), history=history, allowed_tokens="m0", proposal_allowed_tokens=("m1", "m2"))
    rows = expand_proposals(ScheduledBatch(1, decodes=(decode, slot("b")))).decodes
    assert [(r.request_id, r.token_id, r.position) for r in rows] == [("a", 5, 10), ("a", 7, 11), ("a", 8, 12),
                                                                       ("b", 5, 10)]
    assert [r.history.output_token_ids for r in rows[:3]] == [(5,), (5, 7), (5, 7, 8)]
    assert [r.allowed_tokens for r in rows[:3]] == ["m0", "m1", "m2"]
    assert all(r.proposal == () and r.block_table == (0, 1, 2) for r in rows)


def test_a_batch_without_proposals_is_left_as_it_is():
    batch = ScheduledBatch(1, decodes=(slot("a"),))
    assert expand_proposals(batch) is batch


def test_the_batch_counts_proposed_tokens_as_tokens_and_samples():
    batch = ScheduledBatch(1, prefills=(PrefillChunk("p", (1, 2, 3), 0, (0,), True, GREEDY),),
                           decodes=(slot("a", (7, 8)), slot("b")))
    assert batch.num_tokens == 3 + 3 + 1
    assert batch.num_sampling == 1 + 3 + 1


def verify(proposal, samples, logprobs=None):
    rows = expand_proposals(ScheduledBatch(1, decodes=(slot("a", proposal),))).decodes
    return verify_proposals(1, rows, samples, logprobs or [None] * len(rows))


def test_the_longest_agreeing_prefix_is_accepted_then_the_first_disagreeing_sample():
    out = verify((7, 8, 9), [7, 8, 4, 1])
    assert out.accepted == {"a": (7, 8)} and out.sampled == {"a": 4}
    assert out.new_tokens("a") == (7, 8, 4)


def test_all_accepted_gives_the_token_after_the_last_proposed_one():
    out = verify((7, 8), [7, 8, 3])
    assert out.new_tokens("a") == (7, 8, 3)


def test_the_first_sample_disagreeing_accepts_nothing():
    out = verify((7, 8), [6, 8, 3])
    assert out.accepted == {} and out.sampled == {"a": 6}


def test_logprobs_follow_the_tokens_kept():
    lps = [TokenLogprobs(t, -float(i)) for i, t in enumerate((7, 8, 4, 1))]
    out = verify((7, 8, 9), [7, 8, 4, 1], lps)
    assert out.accepted_logprobs == {"a": (lps[0], lps[1])} and out.logprobs == {"a": lps[2]}


def test_a_failed_verification_row_ends_the_run_before_it_and_a_failed_first_row_fails_the_request():
    rows = expand_proposals(ScheduledBatch(1, decodes=(slot("a", (7, 8)), slot("b", (3,))))).decodes
    out = verify_proposals(1, rows, [7, None, 2, None, 3], [None] * 5, {"a": "boom", "b": "bang"})
    assert out.new_tokens("a") == (7,)
    assert "a" not in out.failed and out.failed == {"b": "bang"} and "b" not in out.sampled
