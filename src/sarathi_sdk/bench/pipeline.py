"""`sarathi bench pipeline`: pipeline bubbles of each policy on the same workload, N stages.

SARATHI's claim for pipeline parallelism: decode-maximal micro-batches of one token budget cost
about the same, so the stages wait on each other less than under Orca (whole prompts mixed into decode
steps) or vLLM (prefill-only and decode-only steps). For each policy this starts an engine with
`pipeline_parallel_size=N`, serves the same requests (prompt lengths drawn between
`--min-prompt-len` and `--prompt-len`, arriving as a Poisson process of `--rate` requests per second,
or all at once), and reads the per-stage accounting the pipeline backend keeps (`pipeline_stats()`, a list of
`StageStats`): bubble fraction = a stage's idle share of the time the pipeline had work in flight.
It prints the full results as JSON, then a table: bubble fraction per stage and the ratio of
SARATHI's mean to each baseline's.

The backend is reached through a factory-hook wrapper (as `runner.StepRecorder` does), so the core
never imports the pipeline plugin. Imports only the public API and the benchmark's own modules.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import anyio

from .. import Engine, SamplingParams, StageStats
from . import setup
from .machine import describe, kernel_variant_of
from .runner import BackendProbe
from .tasks import gather

POLICIES = ("sarathi", "orca", "vllm")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("pipeline", help="pipeline bubbles of sarathi vs orca and vllm (pipeline_parallel_size)")
    parser.add_argument("--model", default=None, help="checkpoint folder or .gguf (default: the bundled model)")
    parser.add_argument("--stages", type=int, default=2, help="pipeline_parallel_size (default 2)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--num-requests", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=512, help="longest prompt (default %(default)s)")
    parser.add_argument("--min-prompt-len", type=int, default=64, help="shortest prompt (default %(default)s)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Poisson arrivals, requests per second (default 0: all at once)")
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--token-budget", type=int, default=256, help="per-step budget of every policy")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON results here")
    parser.set_defaults(bench_run=run)


def run(args: argparse.Namespace) -> int:
    policies = [p for p in args.policies.split(",") if p]
    results = {policy: anyio.run(_measure, policy, args, backend="asyncio") for policy in policies}
    variant = next((r["kernel_variant"] for r in results.values()), "unknown")
    result = {"machine": describe(setup.device(), variant),
              "config": {k: v for k, v in vars(args).items() if k not in ("bench_run", "run")},
              "policies": results, "ratios": _ratios(results)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(_table(results, result["ratios"], args.stages))
    return 0


async def _measure(policy: str, args: argparse.Namespace) -> dict[str, Any]:
    probe = BackendProbe()
    async with Engine(args.model, scheduler=policy, pipeline_parallel_size=args.stages, dtype=args.dtype,
                      token_budget=args.token_budget, max_num_seqs=min(args.token_budget, args.num_requests),
                      plugins=[probe]) as engine:
        stats_of = getattr(probe.backend, "pipeline_stats", None)
        if stats_of is None:
            raise SystemExit(f"the backend ({type(probe.backend).__name__}) keeps no pipeline stats: "
                             "is the pipeline plugin installed and pipeline_parallel_size > 1?")
        vocab = _vocab_size(engine.config.model)
        warm = SamplingParams(max_tokens=2, temperature=0, ignore_eos=True)
        await engine.complete(_prompt(random.Random(-1), 32, vocab), warm)
        getattr(probe.backend, "reset_pipeline_stats", lambda: None)()
        params = SamplingParams(max_tokens=args.output_len, temperature=0, ignore_eos=True)
        rng = random.Random(0)
        prompts = [_prompt(rng, rng.randint(args.min_prompt_len, args.prompt_len), vocab)
                   for _ in range(args.num_requests)]
        gaps = [rng.expovariate(args.rate) if args.rate > 0 else 0.0 for _ in prompts]
        started = time.perf_counter()

        async def one(i: int) -> None:
            await anyio.sleep(sum(gaps[:i]))
            await engine.complete(prompts[i], params)

        await gather(*(one(i) for i in range(len(prompts))))
        elapsed = time.perf_counter() - started
        stages: list[StageStats] = stats_of()
        num_steps = engine.stats().num_steps
    return {
        "kernel_variant": kernel_variant_of(probe.backend),  # "unknown" where the pipeline backend does not say
        "seconds": elapsed,
        "num_steps": num_steps,
        "stages": [{"stage": s.stage_index, "layers": list(s.layers), "micro_batches": s.num_micro_batches,
                    "busy_s": s.busy_seconds, "in_flight_s": s.in_flight_seconds,
                    "bubble_fraction": s.bubble_fraction} for s in stages],
        "mean_bubble_fraction": sum(s.bubble_fraction for s in stages) / len(stages),
    }


def _vocab_size(model: str | None) -> int:
    """The checkpoint's vocabulary (prompts are random token ids below it)."""
    config = Path(str(model)) / "config.json"
    return int(json.loads(config.read_text(encoding="utf-8"))["vocab_size"]) if config.is_file() else 256


def _prompt(rng: random.Random, length: int, vocab: int) -> list[int]:
    return [rng.randrange(10, vocab) for _ in range(length)]


def _ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """SARATHI's mean bubble fraction over each baseline's (the goal: <= 0.25)."""
    if "sarathi" not in results:
        return {}
    ours = results["sarathi"]["mean_bubble_fraction"]
    return {policy: ours / r["mean_bubble_fraction"] if r["mean_bubble_fraction"] else float("inf")
            for policy, r in results.items() if policy != "sarathi"}


def _table(results: dict[str, dict[str, Any]], ratios: dict[str, float], num_stages: int) -> str:
    header = ["policy", *(f"bubble s{i}" for i in range(num_stages)), "mean", "sarathi/this", "seconds"]
    lines = ["  ".join(f"{h:>12}" for h in header)]
    for policy, r in results.items():
        cells = [policy, *(f"{s['bubble_fraction']:.3f}" for s in r["stages"]), f"{r['mean_bubble_fraction']:.3f}",
                 f"{ratios[policy]:.3f}" if policy in ratios else "-", f"{r['seconds']:.1f}"]
        lines.append("  ".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)
