"""Property tests: every policy, over random arrivals, lengths, budgets, KV sizes, pipelines and aborts.

Each run goes through `Simulation`, which after every schedule() and update() checks: the token
budget (sarathi), KV blocks neither shared, leaked nor double-freed, no request in two in-flight
batches, each request's chunks and decodes in order and contiguous (from 0 again after a preemption),
and in the end that every request finished within the workload's step bound with every block back.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scheduling.simulate import Simulation
from tests.scheduling.strategies import SCHEDULERS, configs, workloads

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_invariants_hold_and_every_request_finishes(scheduler, data, depth):
    workload = data.draw(workloads())
    config = data.draw(configs(workload, scheduler))
    Simulation(scheduler, config, workload, depth).run()


@SETTINGS
@given(data=st.data(), depth=st.integers(1, 3))
def test_every_policy_samples_the_same_tokens(data, depth):
    """The fake model's token depends only on the context, so batching must never change a token."""
    workload = data.draw(workloads())
    results = {}
    for scheduler in SCHEDULERS:
        config = data.draw(configs(workload, scheduler), label=scheduler)
        results[scheduler] = Simulation(scheduler, config, workload, depth).run().tokens
    reference = results["sarathi"]
    for scheduler, tokens in results.items():
        for index in reference.keys() & tokens.keys():  # an abort may land before or after the end
            assert tokens[index] == reference[index], (scheduler, index)
