"""Property tests: every policy, over random arrivals, lengths, budgets, KV sizes, pipelines and aborts,
with the prefix cache off and on (prompts often share a prefix).

Each run goes through `Simulation`, which after every schedule() and update() checks: the token
budget (sarathi), KV blocks neither leaked nor double-freed, shared only by reference count and never
written while shared, no request in two in-flight batches, each request's chunks and decodes in order
and contiguous (from 0 again after a preemption, or from its cached prefix), and in the end that every
request finished within the workload's step bound with every block back (free or cached).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scheduling.simulate import Simulation
from tests.scheduling.strategies import SCHEDULERS, configs, workloads

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("prefix_caching", [False, True], ids=["cache-off", "cache-on"])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_invariants_hold_and_every_request_finishes(scheduler, prefix_caching, data, depth):
    workload = data.draw(workloads())
    config = dataclasses.replace(data.draw(configs(workload, scheduler)), enable_prefix_caching=prefix_caching)
    Simulation(scheduler, config, workload, depth).run()


@pytest.mark.parametrize("prefix_caching", [False, True], ids=["cache-off", "cache-on"])
@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_every_policy_samples_the_same_tokens(prefix_caching, data, depth):
    """The fake model's token depends only on the context, so neither batching nor reusing cached
    blocks may change a token: with the cache on, every policy must give sarathi's tokens without it."""
    workload = data.draw(workloads())
    results = {}
    for scheduler in SCHEDULERS:
        config = data.draw(configs(workload, scheduler), label=scheduler)
        if prefix_caching:
            config = dataclasses.replace(config, enable_prefix_caching=True)
        results[scheduler] = Simulation(scheduler, config, workload, depth).run().tokens
    if prefix_caching:
        config = data.draw(configs(workload, "sarathi"), label="reference")
        results["reference"] = Simulation("sarathi", config, workload, depth).run().tokens
    reference = results.get("reference", results["sarathi"])
    for scheduler, tokens in results.items():
        for index in reference.keys() & tokens.keys():  # an abort may land before or after the end
            assert tokens[index] == reference[index], (scheduler, index)
