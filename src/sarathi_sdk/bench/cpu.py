"""The CPU fast path measured against its goals, side by side with llama.cpp on the same GGUF file.

One run, repeats alternating between the systems, medians reported:

- batch-1 decode tokens/s, ours and llama.cpp's (`llama-cpp-python`, the optional extra `llamacpp`,
  at 1 and at 2 threads) on the same file; batch-16 decode tokens/s against 8x llama.cpp's batch-1;
- memory-bandwidth utilisation of our batch-1 step: the bytes a decode token really reads (every
  weight in the form the step reads it, plus its KV) over the step time, against this machine's copy
  bandwidth measured right before each batch-1 rate;
- a 1024-token prefill, whole (budget 1024) and in 256-token chunks (budget 256);
- the mixed workload of the issue (32 requests at t=0, prompts uniform in 256..768, outputs 32..64,
  16 sequences): end-to-end throughput and P99 time between tokens for every policy, and a decode's
  marginal cost in a mixed step, from a least-squares fit of the sarathi run's own step times over
  its prefill tokens and decodes, and measured directly on controlled steps (`decode_cost`); and for
  every policy where its time went (`step_kinds`: the steps carrying prefill, the decode-only ones);
- the fixed cost of a prefill pass and of a decode-only step (`pass_cost`), and the most SARATHI can
  gain over the vllm policy from them: the decode-only steps it saves, less the prefill passes it adds.

Whole prompts need a budget that holds them, so the baselines (vllm, orca, static) run at budget
1024; sarathi runs at 256, its chunk size.

With `--isa` it runs the per-ISA-level section instead (`isa.py`): the decode rates of each kernel
build (avx512, avx2) and of the torch path, each in a process of its own, beside llama.cpp builds for
the same levels, quiet and with every core busy, and the greedy agreement between the builds.

Run: `python -m sarathi_sdk.bench.cpu [--model GGUF] [--repeats 3] [--json FILE]`
(`pip install -e ".[llamacpp]"` first for the llama.cpp columns; without it they are skipped), or
`python -m sarathi_sdk.bench.cpu --isa [--llamacpp-python LEVEL=PYTHON ...]`. The record's `machine`
says which CPU, which kernel build and which command.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from .. import Engine, SamplingParams, hookimpl
from . import isa
from .cpu_report import report
from .decode_cost import direct_marginal_cost
from .decode_rate import DECODE_TOKENS, PROMPT_LEN, decode_rate, token_prompt
from .default_model import default_gguf
from .llamacpp import llamacpp_rates
from .machine import copy_bandwidth, describe, kernel_variant_of, read_bandwidth
from .model_cost import bytes_per_decode_token
from .pass_cost import pass_costs, sarathi_edge_bound
from .records import final_metrics
from .runner import BackendProbe
from .tasks import gather

POLICIES = ("sarathi", "vllm", "orca", "static")


async def prefill_rate(engine: Engine, length: int) -> float:
    """Tokens/s of one `length`-token prompt's prefill (time to its first token)."""
    out = await engine.complete(token_prompt(length, 99), SamplingParams(max_tokens=1, ignore_eos=True))
    ttft = final_metrics(out).ttft
    if ttft is None:
        raise ValueError("the prefill produced no token")
    return length / ttft


def on_threads(threads: int, measure: Callable[[], float]) -> float:
    """`measure()` on `threads` torch threads, for a bandwidth probe (`machine.copy_bandwidth`,
    `read_bandwidth`) run right before each batch-1 rate (this shared machine's copy bandwidth read 29
    to 54 GB/s within one day) and on a worker thread, where the engine's steps run (see
    `openmp_teams`)."""
    import torch

    torch.set_num_threads(threads)
    return measure()


class StepTimer:
    """Observer: (prefill tokens, decodes, seconds since the previous step ended) of every step."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, float]] = []
        self._last = time.perf_counter()

    def reset(self) -> None:
        self.steps.clear()
        self._last = time.perf_counter()

    @hookimpl
    def sarathi_on_step_end(self, batch: Any, stats: Any) -> None:
        now = time.perf_counter()
        self.steps.append((batch.num_tokens - len(batch.decodes), len(batch.decodes), now - self._last))
        self._last = now


def mixed_requests(seed: int = 0, n: int = 32) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    return [(token_prompt(rng.randint(256, 768), i), rng.randint(32, 64)) for i in range(n)]


async def mixed_run(engine: Engine, timer: StepTimer | None) -> dict[str, float]:
    requests = mixed_requests()
    if timer is not None:
        timer.reset()
    start = time.perf_counter()
    outputs = await gather(
        *(engine.complete(p, SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)) for p, n in requests)
    )
    elapsed = time.perf_counter() - start
    tbts = sorted(t for o in outputs for t in final_metrics(o).tbts)
    tokens = sum(len(p) + n for p, n in requests)
    return {"e2e_tok_s": tokens / elapsed, "tbt_p99": tbts[int(0.99 * (len(tbts) - 1))]}


def step_kinds(steps: Sequence[tuple[int, int, float]]) -> dict[str, float]:
    """Where a mixed run's time went: the steps carrying prefill tokens (with whatever decodes rode
    along) and the decode-only ones, their counts, seconds and tokens. Every policy does the same
    prefill and decode work on this workload, so these say which steps one policy spends more on."""
    prefill = [(p, d, t) for p, d, t in steps if p > 0]
    alone = [(p, d, t) for p, d, t in steps if p == 0]
    return {
        "prefill_steps": len(prefill),
        "prefill_step_s": sum(t for _, _, t in prefill),
        "prefill_tokens": sum(p for p, _, _ in prefill),
        "decodes_in_prefill_steps": sum(d for _, d, _ in prefill),
        "decode_steps": len(alone),
        "decode_step_s": sum(t for _, _, t in alone),
        "decodes_alone": sum(d for _, d, _ in alone),
    }


def decode_marginal_cost(steps: Sequence[tuple[int, int, float]]) -> dict[str, float]:
    """Least squares of step seconds = fixed + per prefill token x p + per decode x d, over the mixed
    steps (both kinds of work present) and the others alike."""
    import numpy as np

    rows = np.array([[1.0, p, d] for p, d, _ in steps])  # [S, 3]
    seconds = np.array([t for _, _, t in steps])  # [S]
    (fixed, per_prefill, per_decode), *_ = np.linalg.lstsq(rows, seconds, rcond=None)
    return {"fixed_ms": fixed * 1e3, "per_prefill_token_ms": per_prefill * 1e3, "per_decode_ms": per_decode * 1e3}


async def run(model: str | None, repeats: int) -> dict[str, Any]:
    import torch

    gguf = model or default_gguf()
    threads = torch.get_num_threads()
    timers, probe = {name: StepTimer() for name in POLICIES}, BackendProbe()
    common: dict[str, Any] = {"max_num_seqs": 16, "num_kv_blocks": 2048, "block_size": 16}
    engines = {
        name: Engine(gguf, scheduler=name, token_budget=256 if name == "sarathi" else 1024, **common,
                     plugins=[timers[name], probe] if name == "sarathi" else [timers[name]])
        for name in POLICIES
    }
    whole = Engine(gguf, token_budget=1024, max_num_seqs=16, num_kv_blocks=256)
    results: dict[str, list[Any]] = {}
    for engine in (*engines.values(), whole):
        await engine.start()
    try:
        ours = engines["sarathi"]
        for repeat in range(repeats):
            for llamacpp_threads in (1, 2):
                rates = llamacpp_rates(gguf, llamacpp_threads, 1, token_prompt(PROMPT_LEN, 0), token_prompt(1024, 99),
                                       DECODE_TOKENS)
                if rates is not None:
                    results.setdefault(f"llamacpp_{llamacpp_threads}t", []).append(rates)
            # the machine's bandwidth drifts within minutes: each batch-1 rate gets its own copy measurement
            results.setdefault("copy_bandwidth", []).append(await anyio.to_thread.run_sync(on_threads, threads, copy_bandwidth))
            results.setdefault("read_bandwidth", []).append(await anyio.to_thread.run_sync(on_threads, threads, read_bandwidth))
            results.setdefault("decode_b1", []).append(await decode_rate(ours, 1))
            results.setdefault("decode_b16", []).append(await decode_rate(ours, 16))
            results.setdefault("prefill_whole", []).append(await prefill_rate(whole, 1024))
            results.setdefault("prefill_chunked", []).append(await prefill_rate(ours, 1024))
            # each repeat starts the mixed workload with another policy, so no policy always runs
            # first after the prefill probes (this machine's speed drifts within minutes)
            for name in POLICIES[repeat % len(POLICIES):] + POLICIES[:repeat % len(POLICIES)]:
                engine = engines[name]
                results.setdefault(f"mixed_{name}", []).append(await mixed_run(engine, timers[name]))
                results.setdefault(f"steps_{name}", []).append(step_kinds(timers[name].steps))
                if name == "sarathi":
                    results.setdefault("fit", []).append(decode_marginal_cost(timers[name].steps))
            backend = probe.backend
            assert backend is not None  # the sarathi engine is started
            results.setdefault("direct", []).append(
                await anyio.to_thread.run_sync(direct_marginal_cost, backend, common["block_size"])
            )
            results.setdefault("pass_costs", []).append(
                await anyio.to_thread.run_sync(pass_costs, backend, common["block_size"])
            )
        bytes_b1 = bytes_per_decode_token(probe.backend, PROMPT_LEN + DECODE_TOKENS // 2)
        machine = describe("cpu", kernel_variant_of(probe.backend))
    finally:
        for engine in (*engines.values(), whole):
            await engine.close()
    return _summary(results, bytes_b1, machine)


def _median_dict(items: Sequence[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(item[key] for item in items) for key in items[0]}


def _summary(results: dict[str, list[Any]], bytes_b1: int, machine: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "machine": machine | {"copy_bandwidth_gb_s": statistics.median(results["copy_bandwidth"]) / 1e9,
                              "read_bandwidth_gb_s": statistics.median(results["read_bandwidth"]) / 1e9},
        "decode_b1_tok_s": statistics.median(results["decode_b1"]),
        "decode_b16_tok_s": statistics.median(results["decode_b16"]),
        "prefill_whole_tok_s": statistics.median(results["prefill_whole"]),
        "prefill_chunked_tok_s": statistics.median(results["prefill_chunked"]),
        "bytes_per_b1_token": bytes_b1,
        "fit": _median_dict(results["fit"]),
        "direct": _median_dict(results["direct"]),
        "mixed": {name: _median_dict(results[f"mixed_{name}"]) for name in POLICIES},
        "steps": {name: _median_dict(results[f"steps_{name}"]) for name in POLICIES},
        "pass_costs": _median_dict(results["pass_costs"]),
    }
    out["sarathi_edge_bound"] = sarathi_edge_bound(out["pass_costs"], out["steps"]["sarathi"], out["steps"]["vllm"])
    out["sarathi_vs_best_paired"] = paired_ratio(results)
    out["mbu_b1"] = statistics.median(
        bytes_b1 * rate / bandwidth for rate, bandwidth in zip(results["decode_b1"], results["copy_bandwidth"])
    )
    out["read_share_b1"] = statistics.median(
        bytes_b1 * rate / bandwidth for rate, bandwidth in zip(results["decode_b1"], results["read_bandwidth"])
    )
    for threads in (1, 2):
        if f"llamacpp_{threads}t" in results:
            out[f"llamacpp_{threads}t"] = _median_dict(results[f"llamacpp_{threads}t"])
    return out


def paired_ratio(results: dict[str, list[Any]]) -> float:
    """The median over repeats of sarathi's e2e throughput over the best baseline's in the same repeat:
    each repeat runs every policy within a minute, so a drift of the machine's speed between repeats
    cancels out of each ratio, where it does not from the ratio of the policies' medians."""
    ratios: list[float] = [
        results["mixed_sarathi"][i]["e2e_tok_s"]
        / max(results[f"mixed_{name}"][i]["e2e_tok_s"] for name in POLICIES if name != "sarathi")
        for i in range(len(results["mixed_sarathi"]))
    ]
    return statistics.median(ratios)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats, medians (1: a quick check)")
    parser.add_argument("--json", default=None, help="write the full results here")
    parser.add_argument("--isa", action="store_true", help="the per-ISA-level section instead (see isa.py)")
    isa.add_options(parser)
    args = parser.parse_args(argv)
    if args.isa:
        return isa.main(args)
    summary = anyio.run(run, args.model, args.repeats, backend="asyncio")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    print("\n".join(report(summary)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
