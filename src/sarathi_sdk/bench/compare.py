"""`sarathi bench compare`: the same requests through each scheduler (and the `hf` baseline), side by side.

One process, one model, one workload. Every engine is started first and warmed up; then each repeat
serves the workload once through every system in turn (interleaved, so a noisy machine slows all of
them alike), and each metric is the median over repeats. Ratios are against `--reference` (the vllm
policy by default). Before the runs, prefill-only steps are timed at a few sizes on the same engines:
that profile is what SARATHI's decode throughput subtracts from a mixed step (see `report.py`).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from .. import Engine, SamplingParams
from ..errors import ConfigError
from . import goals, plots, setup
from .hf_baseline import HFBaseline
from .machine import describe, kernel_variant_of, measure_rates
from .model_cost import ModelCost
from .records import RequestRecord, StepRecord
from .report import decode_throughput, piecewise_linear, request_metrics, step_metrics
from .runner import StepRecorder, serve
from .workloads import BenchRequest, prompt_token_ids

PREFILL_PROFILE_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
TABLE_COLUMNS = (
    ("e2e tok/s", "e2e_throughput", "{:.1f}"),
    ("out tok/s", "output_throughput", "{:.1f}"),
    ("decode tok/s", "decode_throughput", "{:.1f}"),
    ("TTFT p50", "ttft_p50", "{:.3f}"),
    ("TBT p50", "tbt_p50", "{:.3f}"),
    ("TBT p99", "tbt_p99", "{:.3f}"),
    ("sched p50", "scheduling_delay_p50", "{:.3f}"),
    ("preempt", "num_preemptions", "{:.0f}"),
    ("cache hit", "prefix_cache_hit_rate", "{:.2f}"),
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("compare", help="the same requests through each scheduler and the hf baseline")
    setup.add_workload_options(parser)
    parser.add_argument("--schedulers", default="sarathi,vllm,orca,static",
                        help="comma-separated policy names; POLICY+prefix turns the prefix cache on")
    parser.add_argument("--baseline", choices=("hf", "none"), default="none",
                        help="also serve the requests with transformers generate in static batches")
    parser.add_argument("--request-rate", type=float, help="Poisson requests/s (default: all at t=0)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reference", default="vllm", help="the system ratios are taken against")
    parser.set_defaults(bench_run=run)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.schedulers.split(",") if n.strip()]
    if not names or args.repeats < 1:
        raise ConfigError("--schedulers needs at least one name and --repeats at least 1")
    setup.check_options(args, args.request_rate)
    for name in names:
        setup.split_system(name)
    if args.plot_dir:
        plots.require_matplotlib()
    result = anyio.run(compare, names, args, backend="asyncio")
    return setup.report(args, result, plots.compare_plots, table)


async def compare(names: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    folder = setup.resolve_model(args.model)
    shape = setup.model_shape(folder)
    requests = setup.workload(args, setup.max_model_len(folder))
    arrivals = setup.arrivals_for(requests, args.request_rate, args)
    device = setup.device()
    # on a worker thread: an OpenMP team left on the event loop's thread slows every step (docs/benchmarks.md)
    rates = await anyio.to_thread.run_sync(measure_rates, device)
    recorders = {name: StepRecorder() for name in names}
    engines = await setup.start_engines(list(names), requests, args, {n: [recorders[n]] for n in names})
    machine = describe(device, kernel_variant_of(recorders[names[0]].backend)) | rates
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        vocab = int(shape["vocab_size"])
        prefill = await profile_prefill(engines, recorders, sum(r.prompt_len for r in requests), vocab)
        cost = ModelCost.from_config(shape, setup.cost_dtype(engines[names[0]]))
        hf = HFBaseline(folder, engines[names[0]].config.dtype, device) if args.baseline == "hf" else None
        if hf is not None:
            runs["hf"] = []
        for engine in engines.values():
            await serve(engine, requests[:2], [0.0, 0.0], vocab)
        total = args.repeats * len(requests) * len(runs)
        with setup.progress(total, "compare") as bar:
            for repeat in range(args.repeats):
                for name in names:
                    first = len(recorders[name].steps)
                    t0, records = await serve(engines[name], requests, arrivals, vocab, bar, args.shared_prefix_len)
                    steps = recorders[name].since(t0, first)
                    runs[name].append(summarize(records, steps, prefill, cost, machine))
                if hf is not None:
                    records = await anyio.to_thread.run_sync(hf.serve, requests, arrivals, args.max_num_seqs,
                                                             10_000 * (repeat + 1), bar, args.shared_prefix_len)
                    runs["hf"].append(summarize_hf(records))
    finally:
        for engine in engines.values():
            await engine.close()
    results = {name: median_run(rs) for name, rs in runs.items()}
    return {
        "machine": machine,
        "config": setup.config_record(args, names, requests, engines_options(names, requests, args)),
        "prefill_profile": prefill.points,
        "results": results,
        "ratios": ratios(results, args.reference),
        "goals": goals.compare_goals(results, device),
    }


def engines_options(names: Sequence[str], requests: list[BenchRequest], args: argparse.Namespace) -> dict[str, Any]:
    return {name: setup.engine_options(name, requests, args) for name in names}


class PrefillProfile:
    """Prefill-only step seconds at a few sizes, interpolated in between (`report.piecewise_linear`)."""

    def __init__(self, points: list[tuple[int, float]]) -> None:
        self.points = points
        self._cost = piecewise_linear(points)

    def __call__(self, tokens: int) -> float:
        return self._cost(tokens)


def started_budget(engine: Engine) -> int:
    """A started engine's per-step token budget: always a number, since start resolves "auto"."""
    budget = engine.config.token_budget
    if not isinstance(budget, int):
        raise TypeError(f"engine {engine.config.scheduler!r} is not started: its token_budget is {budget!r}")
    return budget


async def profile_prefill(engines: dict[str, Engine], recorders: dict[str, StepRecorder], prompt_tokens: int,
                          vocab: int, repeats: int = 3) -> PrefillProfile:
    """Time one-request prefill steps of each profile size up to what a step of this run can hold (the
    largest budget, or all the workload's prompt tokens if fewer), on the engine with the largest
    budget (median of `repeats`). A step of several prompts is costed as one prompt of its size."""
    name = max(engines, key=lambda n: started_budget(engines[n]))
    engine, recorder = engines[name], recorders[name]
    limit = min(started_budget(engine), max(prompt_tokens, 32))
    sizes = [s for s in PREFILL_PROFILE_SIZES if s <= limit] or [limit]
    points = []
    for size in sizes:
        seconds = []
        for i in range(repeats + 1):
            first = len(recorder.steps)
            await engine.complete(prompt_token_ids(size, 900_000 + 97 * size + i, vocab),
                                  SamplingParams(max_tokens=1, temperature=0, ignore_eos=True))
            seconds += [s.seconds for s in recorder.steps[first:] if s.prefill_tokens == size and not s.decodes]
        points.append((size, statistics.median(seconds[1:])))
    return PrefillProfile(points)


def summarize(records: list[RequestRecord], steps: list[StepRecord], prefill: PrefillProfile, cost: ModelCost,
              machine: dict[str, Any]) -> dict[str, Any]:
    out = request_metrics(records)
    out["decode_throughput"] = decode_throughput(steps, prefill)
    out |= step_metrics(steps, cost, machine["copy_bandwidth"], machine["matmul_rate"])
    out["tbts"] = sorted(b - a for r in records for a, b in zip(r.token_times, r.token_times[1:]))
    out["steps"] = [(s.num_tokens, s.seconds) for s in steps]
    return out


def summarize_hf(records: list[RequestRecord]) -> dict[str, Any]:
    """The hf baseline's metrics. Its steps are transformers' forward passes, which the engine's
    recorder cannot see: decode throughput is each batch's decode tokens over the time from its first
    token to its last, every step after the prefill being decode-only."""
    out = request_metrics(records)
    batches: dict[float, list[RequestRecord]] = {}
    for record in records:
        batches.setdefault(record.scheduled, []).append(record)
    decodes = sum(r.output_len - 1 for r in records)
    seconds = sum(max(r.token_times[-1] for r in b) - b[0].token_times[0] for b in batches.values())
    out["decode_throughput"] = decodes / seconds if seconds > 0 else float("nan")
    out["tbts"] = sorted(b - a for r in records for a, b in zip(r.token_times, r.token_times[1:]))
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every number the median over repeats; the raw TBTs and steps of all repeats pooled."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            out[key] = statistics.median(r[key] for r in runs)
        else:
            out[key] = [item for r in runs for item in r[key]]
    out["num_repeats"] = len(runs)
    out["tbt_p99_repeats"] = [r["tbt_p99"] for r in runs]
    return out


RATIO_METRICS = ("e2e_throughput", "output_throughput", "decode_throughput", "tbt_p50", "tbt_p99", "ttft_p50")


def ratios(results: dict[str, dict[str, Any]], reference: str) -> dict[str, dict[str, float]]:
    if reference not in results:
        return {}
    ref = results[reference]
    return {name: {m: r[m] / ref[m] if ref[m] else float("nan") for m in RATIO_METRICS}
            for name, r in results.items()}


def table(result: dict[str, Any]) -> list[str]:
    """Results per system, ratios against the reference, then each goal beside its measurement."""
    results = result["results"]
    width = max(10, *(len(name) + 1 for name in results))
    lines = [f"{'system':<{width}}" + "".join(f"{title:>14}" for title, _, _ in TABLE_COLUMNS)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}" + "".join(f"{fmt.format(r[key]):>14}" for _, key, fmt in TABLE_COLUMNS))
    if result["ratios"]:
        reference = result["config"]["reference"]
        lines.append(f"ratios vs {reference}: " + "; ".join(
            f"{name} e2e {r['e2e_throughput']:.2f}x, decode {r['decode_throughput']:.2f}x, TBT p99 {r['tbt_p99']:.2f}x"
            for name, r in result["ratios"].items() if name != reference))
    lines += goals.lines(result["goals"])
    return lines
