"""policy_order="priority": lower priority value first, then arrival, in every policy; FCFS otherwise."""

from __future__ import annotations

import pytest

from sarathi_sdk import ConfigError, EngineConfig, RequestStatus
from tests.conftest import make_request
from tests.scheduling.helpers import step
from tests.scheduling.policies import make
from tests.scheduling.strategies import SCHEDULERS


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_waiting_queue_follows_priority_then_arrival(scheduler):
    policy, _ = make(scheduler, token_budget=8, max_num_seqs=1, policy_order="priority")
    for rid, priority in (("a", 2), ("b", 0), ("c", 1), ("d", 0)):
        policy.add(make_request(rid, prompt_len=3, max_tokens=1, priority=priority))
    order = [step(policy)[0].prefills[0].request_id for _ in range(4)]
    assert order == ["b", "d", "c", "a"]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_fcfs_ignores_priority(scheduler):
    policy, _ = make(scheduler, token_budget=8, max_num_seqs=1)
    for rid, priority in (("a", 2), ("b", 0)):
        policy.add(make_request(rid, prompt_len=3, max_tokens=1, priority=priority))
    assert [step(policy)[0].prefills[0].request_id for _ in range(2)] == ["a", "b"]


@pytest.mark.parametrize("scheduler", ["sarathi", "vllm", "orca"])
def test_the_victim_is_the_lowest_priority_not_the_youngest(scheduler):
    policy, _ = make(scheduler, num_blocks=6, block_size=4, token_budget=64, policy_order="priority")
    low = make_request("low", prompt_len=8, max_tokens=9, priority=5)  # arrives first
    high = make_request("high", prompt_len=8, max_tokens=9, priority=0)
    mid = make_request("mid", prompt_len=8, max_tokens=9, priority=1)
    for request in (low, high, mid):
        policy.add(request)
    while not all(r.is_decode for r in (low, high, mid)):
        step(policy)
    batch, _ = step(policy)  # each needs a 3rd block, none is free
    assert low.status is RequestStatus.WAITING and low.num_preemptions == 1
    assert {d.request_id for d in batch.decodes} <= {"high", "mid"}
    assert high.num_preemptions == 0


def test_a_preempted_request_returns_ahead_of_lower_priority_waiting_ones():
    policy, _ = make("sarathi", num_blocks=4, block_size=4, token_budget=64, policy_order="priority")
    a = make_request("a", prompt_len=8, max_tokens=9, priority=0)
    b = make_request("b", prompt_len=8, max_tokens=9, priority=1)
    policy.add(a)
    policy.add(b)
    step(policy)
    policy.add(make_request("late", prompt_len=2, priority=3))
    step(policy)  # a needs a 3rd block: b is preempted and queued before "late"
    assert [r.request_id for r in policy.waiting] == ["b", "late"]


def test_unknown_policy_order_is_a_config_error():
    with pytest.raises(ConfigError, match="policy_order"):
        EngineConfig(policy_order="lifo")


def test_every_order_the_config_accepts_is_one_the_policies_know():
    from sarathi_scheduling.ordering import ORDERS
    from sarathi_sdk.config import POLICY_ORDERS

    assert set(POLICY_ORDERS) == set(ORDERS)
