"""The policies with the prefix cache on: a request's first chunk starts after its cached whole blocks,
only blocks whose step has been processed are shared, a waiting request holds no blocks between
steps, a preempted request finds its own blocks again, and the hit counts behind the engine's stats."""

from __future__ import annotations

import dataclasses

import pytest

from sarathi_sdk import EngineConfig, Request, RequestStatus, SamplingParams
from tests.scheduling.helpers import fake_output, step
from tests.scheduling.policies import make
from tests.scheduling.simulate import Arrival, Simulation, Workload
from tests.scheduling.strategies import SCHEDULERS

SYSTEM = tuple(range(1, 37))  # 36 tokens: nine blocks of 4


def request(rid: str, tokens, index: int, max_tokens: int = 4) -> Request:
    return Request(rid, tuple(tokens), SamplingParams(max_tokens=max_tokens), float(index), index)


def run(policy, *requests) -> None:
    for r in requests:
        policy.add(r)
    while policy.has_work():
        step(policy)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_request_starts_after_the_cached_blocks_of_a_finished_one(scheduler):
    policy, kv = make(scheduler, num_blocks=64, block_size=4, token_budget=16, enable_prefix_caching=True)
    first = request("first", SYSTEM + (40, 41), 0)
    run(policy, first)
    cached = first.num_computed_tokens // 4
    second = request("second", SYSTEM + (50, 51, 52), 1)
    policy.add(second)
    batch, _ = step(policy)
    chunk = batch.prefills[0]
    assert chunk.request_id == "second" and chunk.start_pos == 36
    assert chunk.token_ids == (50, 51, 52)
    assert second.num_cached_tokens == 36 and first.num_cached_tokens == 0
    assert cached >= 9 and all(kv.ref_count(b) == 1 for b in chunk.block_table)
    stats = policy.stats()
    assert (stats.num_prompt_tokens, stats.num_cached_prompt_tokens) == (38 + 39, 36)


def test_only_blocks_whose_step_was_processed_are_shared_during_a_chunked_prefill():
    policy, kv = make("sarathi", num_blocks=64, block_size=4, token_budget=16, enable_prefix_caching=True)
    a = request("a", SYSTEM + (7,), 0)
    policy.add(a)
    step(policy)  # a's first chunk, positions 0..15, processed
    b = request("b", SYSTEM + (8,), 1)
    policy.add(b)
    batch = policy.schedule()  # a's next chunk (16..31) and b, which finds a's first four blocks
    starts = {c.request_id: c.start_pos for c in batch.prefills}
    assert starts == {"a": 16}  # the budget is a's; b waits
    assert b.block_table == () and b.num_computed_tokens == 0  # waiting: holds nothing between steps
    policy.update(batch, fake_output(batch))
    batch = policy.schedule()  # a's 32..36 and b after a's eight computed blocks
    starts = {c.request_id: c.start_pos for c in batch.prefills}
    assert starts == {"a": 32, "b": 32}
    assert b.block_table[:8] == a.block_table[:8]
    assert kv.ref_count(a.block_table[8]) == 1  # a is writing it this step: not shared


def test_back_to_back_prefill_steps_of_the_vllm_policy_share_blocks():
    """The vllm policy runs prefill steps without allocating for the requests already running: their
    computed blocks must be found all the same."""
    policy, _ = make("vllm", num_blocks=64, block_size=4, token_budget=40, enable_prefix_caching=True)
    for i in range(3):
        policy.add(request(f"r{i}", SYSTEM + (60 + i, 70 + i), i))
    first, _ = step(policy)
    second, _ = step(policy)
    assert [(c.request_id, c.start_pos) for c in first.prefills] == [("r0", 0)]
    assert [(c.request_id, c.start_pos) for c in second.prefills] == [("r1", 36), ("r2", 36)]


def test_a_head_of_queue_that_cannot_start_gives_its_cached_prefix_back():
    policy, kv = make("sarathi", num_blocks=64, block_size=4, token_budget=16, enable_prefix_caching=True,
                      max_num_partial_prefills=1)
    run(policy, request("warm", SYSTEM + (9,), 0))
    long = request("long", tuple(range(100, 160)), 1)
    policy.add(long)
    step(policy)  # long is partial now
    waiting = request("waiting", SYSTEM + tuple(range(200, 220)), 2)
    policy.add(waiting)
    step(policy)
    assert waiting.status is RequestStatus.WAITING
    assert waiting.block_table == () and waiting.num_computed_tokens == 0
    assert kv.num_free_blocks() + len(long.block_table) == kv.num_blocks


@pytest.mark.parametrize("scheduler", ("sarathi", "vllm", "orca"))
def test_a_preempted_request_resumes_after_its_own_cached_blocks(scheduler):
    workload = Workload(tuple(Arrival(0, 30, 24) for _ in range(3)))
    config = EngineConfig(scheduler=scheduler, token_budget=32, block_size=4, num_kv_blocks=24, max_num_seqs=3,
                          enable_prefix_caching=True)
    sim = Simulation(scheduler, config, workload)
    result = sim.run()
    assert any(preempted for _, preempted, _ in sim.cached_starts), sim.cached_starts
    off = Simulation(scheduler, dataclasses.replace(config, enable_prefix_caching=False), workload).run()
    assert result.tokens == off.tokens


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_requests_sharing_a_system_prompt_share_its_blocks(scheduler):
    workload = Workload(tuple(Arrival(tick, 30 + tick, 6, shared_prefix=24) for tick in (0, 0, 5, 9, 9)))
    config = EngineConfig(scheduler=scheduler, token_budget=16, block_size=4, num_kv_blocks=200, max_num_seqs=4,
                          enable_prefix_caching=True)
    sim = Simulation(scheduler, config, workload, depth=2)
    result = sim.run()
    assert len(sim.cached_starts) >= 2 and all(start == 24 for _, _, start in sim.cached_starts)
    off = Simulation(scheduler, dataclasses.replace(config, enable_prefix_caching=False), workload, depth=2).run()
    assert result.tokens == off.tokens
