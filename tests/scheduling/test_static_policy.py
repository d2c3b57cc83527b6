"""The static baseline on exact batches: a batch runs until all its members finish."""

from __future__ import annotations

from tests.conftest import make_request
from tests.scheduling.helpers import shape, step
from tests.scheduling.policies import make


def test_no_request_joins_until_the_whole_batch_has_finished():
    policy, _ = make("static", token_budget=8, max_num_seqs=2)
    policy.add(make_request("short", prompt_len=3, max_tokens=1))
    policy.add(make_request("long", prompt_len=3, max_tokens=4))
    policy.add(make_request("next", prompt_len=3, max_tokens=1))
    shapes = [shape(step(policy)[0]) for _ in range(5)]
    assert shapes == [
        (0, [("short", 3), ("long", 3)]),  # short finishes here; its slot stays empty
        (1, []),
        (1, []),
        (1, []),
        (0, [("next", 3)]),
    ]


def test_each_member_reserves_its_whole_lifetime_up_front():
    policy, kv = make("static", num_blocks=10, block_size=4)
    policy.add(make_request("a", prompt_len=5, max_tokens=12))  # 5 + 11 positions: 4 blocks
    policy.add(make_request("b", prompt_len=9, max_tokens=20))  # 9 + 19 positions: 7 blocks
    batch, _ = step(policy)
    assert [c.request_id for c in batch.prefills] == ["a"]
    assert kv.num_free_blocks() == 6


def test_an_aborted_member_leaves_and_the_rest_run_on():
    policy, kv = make("static", num_blocks=20, block_size=4)
    policy.add(make_request("a", prompt_len=4, max_tokens=3))
    policy.add(make_request("b", prompt_len=4, max_tokens=3))
    step(policy)
    policy.abort("a")
    policy.add(make_request("c", prompt_len=4, max_tokens=3))
    assert shape(step(policy)[0]) == (1, [])
    step(policy)
    assert shape(step(policy)[0]) == (0, [("c", 4)])
