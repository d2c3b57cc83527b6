"""The orca baseline on exact batches: decodes plus whole prompts in the same step."""

from __future__ import annotations

from tests.conftest import make_request
from tests.scheduling.helpers import shape, step
from tests.scheduling.policies import make


def test_whole_prompts_join_the_decodes_with_no_token_budget():
    policy, _ = make("orca", token_budget=16)
    policy.add(make_request("a", prompt_len=5, max_tokens=5))
    step(policy)
    policy.add(make_request("b", prompt_len=300))
    policy.add(make_request("c", prompt_len=200))
    batch, _ = step(policy)
    assert shape(batch) == (1, [("b", 300), ("c", 200)])
    assert batch.num_tokens == 501


def test_admission_stops_at_max_num_seqs_and_at_a_full_cache():
    policy, _ = make("orca", token_budget=64, max_num_seqs=2)
    for rid in "abc":
        policy.add(make_request(rid, prompt_len=4))
    assert [c.request_id for c in step(policy)[0].prefills] == ["a", "b"]
    policy, _ = make("orca", num_blocks=3, block_size=4)
    policy.add(make_request("a", prompt_len=8))
    policy.add(make_request("b", prompt_len=8))
    assert [c.request_id for c in step(policy)[0].prefills] == ["a"]


def test_no_prompt_joins_a_step_that_preempted():
    policy, _ = make("orca", num_blocks=4, block_size=4, token_budget=64)
    old = make_request("old", prompt_len=8, max_tokens=4)
    young = make_request("young", prompt_len=8, max_tokens=4)
    policy.add(old)
    policy.add(young)
    step(policy)
    policy.add(make_request("new", prompt_len=1))
    batch, _ = step(policy)  # old needs a 3rd block: young is preempted, new must wait
    assert shape(batch) == (1, []) and batch.decodes[0].request_id == "old"
    assert [r.request_id for r in policy.waiting] == ["young", "new"]
