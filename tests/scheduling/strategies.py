"""Hypothesis strategies: random workloads and the configs every policy must survive."""

from __future__ import annotations

from hypothesis import strategies as st

from sarathi_sdk import EngineConfig
from tests.scheduling.simulate import Arrival, Workload

SCHEDULERS = ("sarathi", "vllm", "orca", "static")


@st.composite
def workloads(draw, max_requests: int = 10) -> Workload:
    arrivals = draw(st.lists(
        st.builds(
            Arrival,
            tick=st.integers(0, 20),
            prompt_len=st.integers(1, 40),
            max_tokens=st.integers(1, 12),
            priority=st.integers(0, 3),
            stops=st.booleans(),
            shared_prefix=st.sampled_from((0, 0, 8, 20, 40)),
        ),
        min_size=1,
        max_size=max_requests,
    ))
    aborts = draw(st.lists(st.tuples(st.integers(0, 40), st.integers(0, len(arrivals) - 1)), max_size=3))
    return Workload(tuple(arrivals), tuple(aborts))


@st.composite
def configs(draw, workload: Workload, scheduler: str) -> EngineConfig:
    """A config under which every request of `workload` passes the engine's admission (it fits in
    the whole cache alone), with the cache anywhere from just that big to roomy."""
    block_size = draw(st.sampled_from((1, 2, 4, 16)))
    need = max(-(-(a.prompt_len + a.max_tokens) // block_size) for a in workload.arrivals)
    num_blocks = draw(st.integers(need, 3 * need + 2))
    token_budget = draw(st.integers(1, 64))
    max_num_seqs = draw(st.integers(1, min(token_budget, 8)))
    options = dict(
        scheduler=scheduler,
        token_budget=token_budget,
        max_num_seqs=max_num_seqs,
        block_size=block_size,
        num_kv_blocks=num_blocks,
        policy_order=draw(st.sampled_from(("fcfs", "priority"))),
    )
    if scheduler == "sarathi":
        options.update(
            max_num_partial_prefills=draw(st.none() | st.integers(1, 3)),
            long_prefill_token_threshold=draw(st.none() | st.integers(1, token_budget)),
            enable_dynamic_chunking_schedule=draw(st.booleans()),
            low_chunk_size=draw(st.integers(max_num_seqs, token_budget)),
            chunk_schedule_max_tokens=draw(st.integers(1, 64)),
            chunk_schedule_stages=draw(st.integers(1, 4)),
        )
    return EngineConfig(**options)
