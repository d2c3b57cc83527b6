"""The vllm baseline on exact batches: whole prompts first, then decode-only steps."""

from __future__ import annotations

from tests.conftest import make_request
from tests.scheduling.helpers import shape, step
from tests.scheduling.policies import make


def test_waiting_prompts_run_whole_in_a_prefill_only_step_that_pauses_decodes():
    policy, _ = make("vllm", token_budget=64)
    policy.add(make_request("a", prompt_len=10, max_tokens=5))
    assert shape(step(policy)[0]) == (0, [("a", 10)])
    policy.add(make_request("b", prompt_len=30))
    policy.add(make_request("c", prompt_len=30))
    assert shape(step(policy)[0]) == (0, [("b", 30), ("c", 30)])  # a's decode waits
    assert shape(step(policy)[0]) == (3, [])


def test_prompts_fill_the_budget_in_order_without_skipping():
    policy, _ = make("vllm", token_budget=64)
    for rid, length in (("a", 40), ("b", 30), ("c", 5)):
        policy.add(make_request(rid, prompt_len=length))
    assert shape(step(policy)[0]) == (0, [("a", 40)])  # b does not fit beside a; c may not jump it
    assert shape(step(policy)[0]) == (0, [("b", 30), ("c", 5)])


def test_a_prompt_longer_than_the_budget_runs_alone():
    policy, _ = make("vllm", token_budget=16)
    policy.add(make_request("long", prompt_len=100))
    policy.add(make_request("short", prompt_len=2))
    assert shape(step(policy)[0]) == (0, [("long", 100)])
    assert shape(step(policy)[0]) == (0, [("short", 2)])


def test_decode_step_when_the_next_prompt_does_not_fit_in_the_cache():
    policy, kv = make("vllm", num_blocks=4, block_size=4, token_budget=64)
    policy.add(make_request("a", prompt_len=7, max_tokens=8))
    step(policy)
    policy.add(make_request("b", prompt_len=9, max_tokens=2))  # needs 3 blocks, 2 are free
    assert shape(step(policy)[0]) == (1, [])
    assert policy.stats().num_waiting == 1


def test_max_num_seqs_bounds_the_prefill_step():
    policy, _ = make("vllm", token_budget=64, max_num_seqs=2)
    for rid in "abc":
        policy.add(make_request(rid, prompt_len=3))
    assert [c.request_id for c in step(policy)[0].prefills] == ["a", "b"]
