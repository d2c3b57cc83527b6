"""The n-gram (prompt lookup) proposer."""

from __future__ import annotations

from sarathi_sdk import Request, SamplingParams
from sarathi_speculative import NgramProposer


def request(prompt, output=()) -> Request:
    r = Request("r", tuple(prompt), SamplingParams(max_tokens=100), 0.0, 0)
    r.output_token_ids = list(output)
    return r


def test_proposes_what_followed_the_last_tokens_in_the_prompt():
    r = request([1, 2, 3, 4, 5, 6, 9, 9], output=[2, 3])
    assert NgramProposer().propose([r], [3]) == [(4, 5, 6)]


def test_the_longest_suffix_wins_and_the_latest_occurrence_of_it():
    r = request([7, 2, 3, 50, 8, 2, 3, 60, 7, 2, 3, 70, 1], output=[7, 2, 3])
    assert NgramProposer().propose([r], [2]) == [(70, 1)]
    r = request([8, 2, 3, 50, 1, 2, 3, 60, 9], output=[2, 3])
    assert NgramProposer().propose([r], [1]) == [(60,)]


def test_nothing_to_copy_proposes_nothing_and_a_proposal_stops_at_the_end_of_the_text():
    assert NgramProposer().propose([request([1, 2, 3, 4], output=[5, 6])], [4]) == [()]
    assert NgramProposer().propose([request([1, 2, 3, 1, 2], output=[])], [4]) == [(3, 1, 2)]


def test_the_index_grows_with_the_output_between_calls():
    proposer = NgramProposer()
    r = request([1, 2, 3, 4], output=[9])
    assert proposer.propose([r], [2]) == [()]
    r.output_token_ids += [1, 2]
    assert proposer.propose([r], [2]) == [(3, 4)]
    r.output_token_ids += [3, 4, 9, 1]
    assert proposer.propose([r], [3]) == [(2, 3, 4)]
