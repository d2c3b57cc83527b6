"""Property tests of each policy's own rule, checked on every batch of random simulated workloads."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sarathi_scheduling.chunking import ChunkRule
from sarathi_sdk import RequestStatus
from tests.scheduling.simulate import Simulation
from tests.scheduling.strategies import configs, workloads

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def simulate(data, scheduler, depth, check, **overrides):
    workload = data.draw(workloads())
    config = data.draw(configs(workload, scheduler))
    if overrides:
        config = config.__class__(**{**_options(config), **overrides})
    sim = Simulation(scheduler, config, workload, depth)
    sim.checks.append(check)
    sim.run()
    return sim


def _options(config):
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def never_drops_a_ready_decode(sim, batch, before):
    """Left out only if preempted, or, across a pipeline, waiting a step for blocks that requests
    behind it hold while in flight."""
    in_batch = {slot.request_id for slot in batch.decodes}
    for request in before:
        if request.request_id in in_batch or request.status is RequestStatus.WAITING:
            continue
        assert sim.depth > 1 and sim.kv.blocks_needed(request, 1) > 0, request.request_id


def partial_prefills(sim):
    """Running prompts that have had a chunk scheduled but not their last. A request past its prefill
    is not one, even in a step that leaves its decode out: its sampled token makes `num_tokens` one
    more than the positions scheduled so far."""
    return [
        r for r in sim.policy.running
        if r.num_preemptions == sim._seen_preemptions.get(r.request_id, 0)
        and not r.is_decode
        and 0 < sim._next_pos.get(r.request_id, 0) < r.num_tokens
    ]


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_sarathi_never_leaves_a_running_decode_out_of_a_step(data, depth):
    simulate(data, "sarathi", depth, never_drops_a_ready_decode)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_orca_never_leaves_a_running_decode_out_of_a_step(data, depth):
    simulate(data, "orca", depth, never_drops_a_ready_decode)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_vllm_never_mixes_prefills_and_decodes(data, depth):
    def check(sim, batch, before):
        assert not (batch.prefills and batch.decodes)

    simulate(data, "vllm", depth, check)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_vllm_prefill_steps_keep_to_the_budget_unless_one_prompt_runs_alone(data, depth):
    def check(sim, batch, before):
        assert batch.num_tokens <= sim.config.token_budget or len(batch.prefills) == 1

    simulate(data, "vllm", depth, check)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_baselines_never_chunk_a_prompt(data, depth):
    def check(sim, batch, before):
        assert all(chunk.is_last_chunk and chunk.start_pos == 0 for chunk in batch.prefills)

    for scheduler in ("vllm", "orca", "static"):
        simulate(data, scheduler, depth, check)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_static_never_admits_into_a_running_batch(data, depth):
    def check(sim, batch, before):
        if batch.prefills:
            assert not batch.decodes
            assert {r.request_id for r in sim.policy.running} == {c.request_id for c in batch.prefills}
        assert sim.policy.stats().num_preemptions == 0

    simulate(data, "static", depth, check)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3), limit=st.integers(1, 3))
def test_sarathi_keeps_at_most_max_num_partial_prefills(data, depth, limit):
    def check(sim, batch, before):
        assert len(partial_prefills(sim)) <= limit

    simulate(data, "sarathi", depth, check, max_num_partial_prefills=limit)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3), threshold=st.integers(1, 8))
def test_sarathi_caps_each_chunk_at_the_long_prefill_threshold(data, depth, threshold):
    def check(sim, batch, before):
        assert all(len(chunk.token_ids) <= threshold for chunk in batch.prefills)

    simulate(data, "sarathi", depth, check, long_prefill_token_threshold=threshold)


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_sarathi_dynamic_schedule_bounds_the_step_at_each_chunks_stage(data, depth):
    def check(sim, batch, before):
        rule = ChunkRule(sim.config)
        num_batched = len(batch.decodes)
        for chunk in batch.prefills:
            num_batched += len(chunk.token_ids)
            stage = min(chunk.start_pos // rule.tokens_per_stage, len(rule.stage_sizes) - 1)
            assert num_batched <= rule.stage_sizes[stage]

    simulate(data, "sarathi", depth, check, enable_dynamic_chunking_schedule=True)
