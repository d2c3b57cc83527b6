"""`sarathi bench capacity`: the highest Poisson request rate each scheduler sustains under a TBT SLO.

For each scheduler, one engine serves the workload at the rates `capacity.CapacitySearch` asks for;
each probe draws its arrivals with the same seed, so probes differ only in rate.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from ..errors import ConfigError
from . import goals, plots, setup
from .arrivals import arrival_times
from .capacity import DEFAULT_MAX_SCHEDULING_DELAY, CapacitySearch
from .machine import describe, kernel_variant_of
from .report import request_metrics
from .runner import BackendProbe, serve
from .workloads import BenchRequest


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("capacity", help="the highest request rate each scheduler sustains under a TBT SLO")
    setup.add_workload_options(parser, num_requests=64)
    parser.add_argument("--schedulers", default="sarathi,vllm", help="comma-separated policy names")
    parser.add_argument("--tbt-slo", type=float, required=True, help="P99 time-between-tokens SLO, seconds")
    parser.add_argument("--max-scheduling-delay", type=float, default=DEFAULT_MAX_SCHEDULING_DELAY,
                        help="median scheduling delay bound, seconds (Sarathi-Serve: 2)")
    parser.add_argument("--start-rate", type=float, default=0.5, help="first rate probed, requests/s")
    parser.add_argument("--bisections", type=int, default=5)
    parser.set_defaults(bench_run=run)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.schedulers.split(",") if n.strip()]
    if not names:
        raise ConfigError("--schedulers needs at least one name")
    search = CapacitySearch(args.tbt_slo, args.max_scheduling_delay, args.start_rate, bisections=args.bisections)
    if not (search.tbt_slo > 0 and search.start_rate > 0 and search.bisections >= 0):
        raise ConfigError("--tbt-slo and --start-rate must be > 0, --bisections >= 0")
    setup.check_options(args, search.start_rate)
    for name in names:
        setup.split_system(name)
    if args.plot_dir:
        plots.require_matplotlib()
    result = anyio.run(capacity, names, search, args, backend="asyncio")
    return setup.report(args, result, plots.capacity_plots, table)


async def capacity(names: list[str], search: CapacitySearch, args: argparse.Namespace) -> dict[str, Any]:
    folder = setup.resolve_model(args.model)
    shape = setup.model_shape(folder)
    requests = setup.workload(args, setup.max_model_len(folder))
    vocab = int(shape["vocab_size"])
    probe = BackendProbe()  # every engine's backend in turn; the kernel build is the process's, one for all
    results = {name: await capacity_of(name, search, requests, vocab, args, probe) for name in names}
    options = {name: setup.engine_options(name, requests, args) for name in names}
    return {
        "machine": describe(setup.device(), kernel_variant_of(probe.backend)),
        "config": setup.config_record(args, names, requests, options),
        "results": results,
        "goals": goals.capacity_goals({name: r["capacity_rps"] for name, r in results.items()}),
    }


async def capacity_of(name: str, search: CapacitySearch, requests: list[BenchRequest], vocab: int,
                      args: argparse.Namespace, probe: BackendProbe) -> dict[str, Any]:
    """One scheduler's capacity and probes, on its own engine (closed before the next starts)."""
    engine = (await setup.start_engines([name], requests, args, {name: [probe]}))[name]
    try:
        await serve(engine, requests[:2], [0.0, 0.0], vocab)

        async def measure(rate: float) -> tuple[float, float]:
            arrivals = arrival_times(len(requests), rate, args.arrival, args.burstiness, args.seed)
            with setup.progress(len(requests), f"{name} at {rate:.3g} req/s") as bar:
                _, records = await serve(engine, requests, arrivals, vocab, bar, args.shared_prefix_len)
            metrics = request_metrics(records)
            return metrics["tbt_p99"], metrics["scheduling_delay_p50"]

        rate, probes = await search.run(measure)
    finally:
        await engine.close()
    return {"capacity_rps": rate, "probes": [
        {"rate": p.rate, "tbt_p99": p.tbt_p99, "scheduling_delay_p50": p.scheduling_delay_p50, "passed": p.passed}
        for p in probes
    ]}


def table(result: dict[str, Any]) -> list[str]:
    config = result["config"]
    lines = [f"capacity under P99 TBT <= {config['tbt_slo']} s and median scheduling delay <= "
             f"{config['max_scheduling_delay']} s ({len(config['requests'])} requests per probe)"]
    lines.append(f"{'scheduler':<16}{'req/s':>10}{'probes':>8}")
    for name, r in result["results"].items():
        lines.append(f"{name:<16}{r['capacity_rps']:>10.3f}{len(r['probes']):>8}")
    return lines + goals.lines(result["goals"])
