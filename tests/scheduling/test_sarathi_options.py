"""The SARATHI policy's options on exact batches: partial prefills, the long-prefill cap, the dynamic
chunk schedule, and their validation."""

from __future__ import annotations

import pytest

from sarathi_scheduling.chunking import dynamic_chunk_sizes
from sarathi_sdk import ConfigError, EngineConfig
from tests.conftest import make_request
from tests.scheduling.helpers import shape, step
from tests.scheduling.policies import make


def test_one_partial_prefill_at_a_time_still_lets_whole_short_prompts_through():
    policy, _ = make("sarathi", token_budget=32, max_num_partial_prefills=1, long_prefill_token_threshold=16)
    for rid, length in (("long1", 40), ("short", 4), ("long2", 50), ("tiny", 2)):
        policy.add(make_request(rid, prompt_len=length))
    # long1 is partial: short fits whole; long2 would be a second partial and stops admission
    assert shape(step(policy)[0]) == (0, [("long1", 16), ("short", 4)])
    assert shape(step(policy)[0]) == (1, [("long1", 16)])
    # long1's last chunk is in this step, so long2 may start
    assert shape(step(policy)[0]) == (1, [("long1", 8), ("long2", 16), ("tiny", 2)])


def test_without_a_limit_every_prompt_may_be_partial():
    policy, _ = make("sarathi", token_budget=32)
    for rid in ("a", "b", "c"):
        policy.add(make_request(rid, prompt_len=40))
    step(policy)
    assert shape(step(policy)[0]) == (0, [("a", 8), ("b", 24)])


def test_long_prefill_threshold_leaves_room_for_short_prompts():
    policy, _ = make("sarathi", token_budget=64, long_prefill_token_threshold=16)
    policy.add(make_request("long", prompt_len=100))
    policy.add(make_request("short", prompt_len=10))
    assert shape(step(policy)[0]) == (0, [("long", 16), ("short", 10)])
    assert shape(step(policy)[0]) == (1, [("long", 16)])


def test_dynamic_sizes_descend_evenly_from_budget_to_low_in_multiples_of_32():
    assert dynamic_chunk_sizes(512, 128, 4) == (512, 384, 256, 128)
    # 208 and 112 round half to even, as numpy does: 6.5 and 3.5 tiles of 32
    assert dynamic_chunk_sizes(256, 64, 5) == (256, 192, 160, 128, 64)
    assert dynamic_chunk_sizes(20, 6, 3) == (18, 12, 6)  # low below 32 is its own tile: 20 rounds to 18
    assert dynamic_chunk_sizes(512, 128, 1) == (128,)


def test_dynamic_schedule_shrinks_later_chunks_of_a_long_prompt():
    policy, _ = make("sarathi", token_budget=256, max_num_seqs=16, enable_dynamic_chunking_schedule=True,
                     low_chunk_size=64, chunk_schedule_max_tokens=512, chunk_schedule_stages=4)
    policy.add(make_request("p", prompt_len=1000, max_tokens=2))
    sizes = [len(step(policy)[0].prefills[0].token_ids) for _ in range(6)]
    # stages cover 128 context tokens each: sizes 256, 192, 128, 64
    assert sizes == [256, 128, 64, 64, 64, 64]


def test_dynamic_schedule_counts_decodes_in_the_step_size():
    policy, _ = make("sarathi", token_budget=64, max_num_seqs=8, enable_dynamic_chunking_schedule=True,
                     low_chunk_size=8, chunk_schedule_max_tokens=64, chunk_schedule_stages=2)
    decoders = [make_request(f"d{i}", prompt_len=2, max_tokens=50) for i in range(5)]
    for request in decoders:
        policy.add(request)
    step(policy)
    policy.add(make_request("p", prompt_len=200))
    assert shape(step(policy)[0]) == (5, [("p", 59)])  # stage 0: the whole budget
    assert shape(step(policy)[0]) == (5, [("p", 3)])  # stage 1: 8 tokens in all


@pytest.mark.parametrize(
    "options",
    [
        {"max_num_partial_prefills": 0},
        {"long_prefill_token_threshold": 0},
        {"enable_dynamic_chunking_schedule": "yes"},
        {"chunk_schedule_stages": 0},
        {"chunk_schedule_max_tokens": 0},
        {"low_chunk_size": 600},
        {"low_chunk_size": 8, "max_num_seqs": 16},
    ],
)
def test_out_of_range_policy_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        EngineConfig(**options)


def test_low_chunk_size_defaults_to_a_quarter_of_the_budget_but_never_below_max_num_seqs():
    assert EngineConfig(token_budget=512, max_num_seqs=64).low_chunk_size == 128
    assert EngineConfig(token_budget=512).low_chunk_size == 128
    assert EngineConfig(token_budget=64, max_num_seqs=32).low_chunk_size == 32
