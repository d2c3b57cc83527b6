"""What one scheduling step costs: the median time of `schedule()` plus `update()` per batch policy.

The policy's time sits on the engine's critical path between two model steps, so it must stay far
below a step's duration (goal: well under 1 ms at 128 running requests). The benchmark builds each
policy through the plugin hooks, exactly as the Engine does (the model and tokenizer plugins are
blocked: no model is loaded), brings N requests to the steady state where all of them decode, then
times each step's `schedule()` and `update()` with a synthetic StepOutput. Building that output is
the backend's work and is not timed. `decode_slot` is timed on its own: building each decode's frozen
slot is the largest per-request cost a step carries.

Run: `python -m sarathi_sdk.bench.scheduling_cost [--sizes 16 128 512] [--steps 300] [--out FILE]`.
Imports the public API and the plugin manager only; policies come from whichever plugins are installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from .. import EngineConfig, PluginManager, Request, SamplingParams, ScheduledBatch, StepOutput

SCHEDULERS = ("sarathi", "vllm", "orca", "static")
PROMPT_LEN = 128
BLOCK_SIZE = 16


def make_policy(scheduler: str, num_running: int, max_tokens: int) -> Any:
    """A policy holding `num_running` requests that all decode, built through the plugin hooks."""
    blocks_each = -(-(PROMPT_LEN + max_tokens) // BLOCK_SIZE)
    config = EngineConfig(
        scheduler=scheduler,
        token_budget=max(512, 2 * num_running),
        max_num_seqs=num_running,
        block_size=BLOCK_SIZE,
        num_kv_blocks=blocks_each * num_running,
        block_plugins=("sarathi_models", "sarathi_tokenizers"),
    )
    plugins = PluginManager(config)
    kv = plugins.hook.sarathi_make_kv_cache_manager(config=config, num_blocks=config.num_kv_blocks)
    policy = plugins.hook.sarathi_make_batch_policy(config=config, kv_cache_manager=kv,
                                                   registries=plugins.registries())
    requests = [_request(i, max_tokens) for i in range(num_running)]
    for request in requests:
        policy.add(request)
    while not all(r.is_decode for r in requests):
        batch = policy.schedule()
        policy.update(batch, _output(batch))
    return policy


def _request(index: int, max_tokens: int) -> Request:
    return Request(
        request_id=f"r{index}",
        prompt_token_ids=tuple((index + i) % 1000 for i in range(PROMPT_LEN)),
        sampling_params=SamplingParams(max_tokens=max_tokens, ignore_eos=True),
        arrival_time=0.0,
        arrival_index=index,
    )


def _output(batch: ScheduledBatch) -> StepOutput:
    sampled = {c.request_id: 1 for c in batch.prefills if c.is_last_chunk}
    sampled.update((d.request_id, 1) for d in batch.decodes)
    return StepOutput(step_id=batch.step_id, sampled=sampled)


def measure(scheduler: str, num_running: int, steps: int, warmup: int = 20) -> dict[str, Any]:
    """Time `steps` steady decode steps of `num_running` requests."""
    # with a budget of 2N, at least N prompt tokens run per warm-up step: PROMPT_LEN steps at most,
    # during which early requests already decode
    policy = make_policy(scheduler, num_running, max_tokens=steps + warmup + PROMPT_LEN + 2)
    schedule_ns: list[int] = []
    update_ns: list[int] = []
    for i in range(steps + warmup):
        t0 = time.perf_counter_ns()
        batch = policy.schedule()
        t1 = time.perf_counter_ns()
        output = _output(batch)
        t2 = time.perf_counter_ns()
        policy.update(batch, output)
        t3 = time.perf_counter_ns()
        if len(batch.decodes) != num_running:
            raise RuntimeError(f"{scheduler}: step {i} carried {len(batch.decodes)} decodes, not {num_running}")
        if i >= warmup:
            schedule_ns.append(t1 - t0)
            update_ns.append(t3 - t2)
    total = [s + u for s, u in zip(schedule_ns, update_ns)]
    return {
        "scheduler": scheduler,
        "num_running": num_running,
        "steps": steps,
        "median_us": statistics.median(total) / 1e3,
        "p90_us": _quantile(total, 0.9) / 1e3,
        "median_schedule_us": statistics.median(schedule_ns) / 1e3,
        "median_update_us": statistics.median(update_ns) / 1e3,
        "median_decode_slot_us": _decode_slot_cost(policy) * num_running,
    }


def _decode_slot_cost(policy: Any, repeats: int = 2000) -> float:
    """Microseconds of one `Request.decode_slot()` call on a running request."""
    request = policy.running[0]
    t0 = time.perf_counter_ns()
    for _ in range(repeats):
        request.decode_slot()
    return (time.perf_counter_ns() - t0) / repeats / 1e3


def _quantile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 128, 512], help="running requests")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per policy and size")
    parser.add_argument("--out", help="write the full results as JSON to this file")
    args = parser.parse_args(argv)
    results = [measure(s, n, args.steps) for s in args.schedulers for n in args.sizes]
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"python": sys.version.split()[0], "machine": platform.machine(),
                       "processor": platform.processor(), "results": results}, f, indent=2)
    print("median schedule()+update() per step, microseconds (decode_slot: its share)")
    print(f"{'policy':<10}" + "".join(f"{'N=' + str(n):>22}" for n in args.sizes))
    for scheduler in args.schedulers:
        cells = []
        for n in args.sizes:
            r = next(r for r in results if r["scheduler"] == scheduler and r["num_running"] == n)
            cells.append(f"{r['median_us']:>10.1f} ({r['median_decode_slot_us']:>6.1f})")
        print(f"{scheduler:<10}" + "".join(f"{c:>22}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
