"""How many tokens the engine asks a proposer for (`sarathi_sdk.proposals.SpeculationRule`)."""

from __future__ import annotations

import pytest

from sarathi_sdk import EngineConfig, Request, SamplingParams
from sarathi_sdk.proposals import PROBE_INTERVAL, SpeculationRule, best_length


def decode(max_tokens: int = 100, generated: int = 5) -> Request:
    r = Request("r", (1, 2, 3), SamplingParams(max_tokens=max_tokens), 0.0, 0)
    r.output_token_ids = [7] * generated
    r.num_computed_tokens = r.num_tokens - 1
    return r


def test_a_high_acceptance_rate_asks_for_more_tokens_and_a_low_one_for_none():
    assert best_length(0.95, 8, 1) == 8
    assert best_length(0.8, 8, 1) > best_length(0.6, 8, 1) > 0
    assert best_length(0.1, 8, 1) == 0


def test_more_decodes_in_a_step_make_a_verification_row_dearer():
    lengths = [best_length(0.7, 8, batch) for batch in (1, 2, 4, 8, 16)]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]


def test_past_the_batch_size_nothing_is_proposed():
    rule = SpeculationRule(EngineConfig(speculative="ngram", speculative_disable_by_batch_size=2))
    assert all(k > 0 for k in rule.num_tokens([decode(), decode()]))
    assert rule.num_tokens([decode(), decode(), decode()]) == [0, 0, 0]


def test_a_request_whose_proposals_fail_is_turned_down_then_probed_with_one_token():
    rule = SpeculationRule(EngineConfig(speculative="ngram", num_speculative_tokens=4))
    request = decode()
    assert rule.num_tokens([request]) != [0]
    for _ in range(5):
        rule.record(request, 4, 0)
    counts = [rule.num_tokens([request])[0] for _ in range(PROBE_INTERVAL)]
    assert counts == [0] * (PROBE_INTERVAL - 1) + [1]
    for _ in range(6):
        rule.record(request, 4, 4)
    assert rule.num_tokens([request]) == [4]


@pytest.mark.parametrize(("max_tokens", "generated", "most"), [(10, 5, 4), (10, 8, 1), (10, 9, 0)])
def test_a_proposal_never_reaches_past_max_tokens(max_tokens, generated, most):
    rule = SpeculationRule(EngineConfig(speculative="ngram", num_speculative_tokens=8))
    request = decode(max_tokens, generated)
    for _ in range(6):
        rule.record(request, 4, 4)
    assert rule.num_tokens([request]) == [most]


def test_the_step_stays_within_the_backends_fast_decode_rows_the_longest_proposals_shortened_first():
    config = EngineConfig(speculative="ngram", num_speculative_tokens=8, speculative_disable_by_batch_size=None)
    rule = SpeculationRule(config, max_decode_rows=16)
    requests = [decode(), decode(), decode(max_tokens=9, generated=5)]
    for request in requests:
        for _ in range(6):
            rule.record(request, 4, 4)
    counts = rule.num_tokens(requests)
    assert counts[2] == 3 and sum(counts) + len(requests) == 16 and abs(counts[0] - counts[1]) <= 1
    assert SpeculationRule(config, max_decode_rows=3).num_tokens(requests) == [0, 0, 0]
