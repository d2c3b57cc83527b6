"""What every `sarathi bench` command shares: the workload from its options, and engines built alike.

Every scheduler gets the same model, `max_num_seqs`, block size and KV-cache size, so the policies
alone differ. A system named `POLICY+prefix` (say `sarathi+prefix`) is that policy with
`enable_prefix_caching`, so one run compares the cache on and off; pair it with `--shared-prefix-len`. Budgets: "sarathi" (and any chunking policy) runs at `--token-budget`, its chunk size;
the baselines run at `--baseline-token-budget`, by default large enough for the longest prompt and at
least 2048, as vLLM sizes `max_num_batched_tokens` when chunked prefill is off: they prefill whole
prompts and would otherwise refuse long ones. The KV cache holds `max_num_seqs` of the workload's
longest requests (up to `MAX_KV_TOKENS` tokens), so the same memory bounds every policy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import Engine, EngineConfig, PluginManager
from ..errors import ConfigError
from .arrivals import arrival_times
from .workloads import BenchRequest, load_trace, named_trace, synthetic

CHUNKING_SCHEDULERS = ("sarathi",)
MAX_KV_TOKENS = 1 << 17
BASELINE_MIN_BUDGET = 2048


def add_workload_options(parser: argparse.ArgumentParser, num_requests: int = 32) -> None:
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--num-requests", type=int, default=num_requests)
    parser.add_argument("--prompt-len", default="256-768",
                        help="N, LO-HI, lognormal:MEDIAN,P90 or zipf:A,LO-HI (default 256-768)")
    parser.add_argument("--output-len", default="32-64", help="as --prompt-len (default 32-64)")
    parser.add_argument("--workload", choices=("chat", "summarization"),
                        help="a synthetic trace with published length statistics (overrides the lengths)")
    parser.add_argument("--length-scale", type=float, default=1.0, help="multiply every drawn length")
    parser.add_argument("--trace", help="CSV or JSONL file of prompt_len, output_len[, arrival_time]")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--token-budget", type=int, default=256, help="sarathi's per-step token budget")
    parser.add_argument("--baseline-token-budget", type=int, help="the other policies' budget")
    parser.add_argument("--num-kv-blocks", type=int, help="KV-cache blocks of every engine")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--arrival", choices=("poisson", "gamma"), default="poisson")
    parser.add_argument("--burstiness", type=float, default=1.0, help="gamma arrivals' coefficient of variation")
    parser.add_argument("--shared-prefix-len", type=int, default=0,
                        help="every prompt of a run starts with the same N tokens, a system prompt (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the full results to this file")
    parser.add_argument("--plot-dir", help="write PNG plots here (needs matplotlib: the bench extra)")


def model_shape(folder: str) -> dict[str, Any]:
    try:
        shape: dict[str, Any] = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {folder}/config.json: {exc}") from exc
    return shape


def check_options(args: argparse.Namespace, rate: float | None = None) -> None:
    """Every workload option validated before the model is resolved (which may convert a GGUF file)."""
    if args.trace:
        load_trace(args.trace)
    else:
        workload(args, None)
    arrival_times(1, rate, args.arrival, args.burstiness, args.seed)
    for name in ("max_num_seqs", "token_budget", "block_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.length_scale > 0:
        raise ConfigError(f"--length-scale must be > 0, got {args.length_scale}")
    if args.shared_prefix_len < 0:
        raise ConfigError(f"--shared-prefix-len must be >= 0, got {args.shared_prefix_len}")


def workload(args: argparse.Namespace, max_len: int | None) -> list[BenchRequest]:
    if args.trace:
        return load_trace(args.trace, max_len)
    prompt, output = named_trace(args.workload) if args.workload else (args.prompt_len, args.output_len)
    return synthetic(args.num_requests, prompt, output, args.seed, args.length_scale, max_len)


def arrivals_for(requests: list[BenchRequest], rate: float | None, args: argparse.Namespace) -> list[float]:
    """The trace's own arrival times when it has them and no rate is asked for, else the process's."""
    if rate is None and all(r.arrival_time is not None for r in requests):
        return [float(r.arrival_time) for r in requests]  # type: ignore[arg-type]
    return arrival_times(len(requests), rate, args.arrival, args.burstiness, args.seed)


def split_system(name: str) -> tuple[str, bool]:
    """A system name as (policy name, prefix cache on): `sarathi` or `sarathi+prefix`."""
    scheduler, plus, variant = name.partition("+")
    if plus and variant != "prefix":
        raise ConfigError(f"system {name!r}: the only variant is POLICY+prefix (the prefix cache on)")
    return scheduler, bool(plus)


def engine_options(name: str, requests: list[BenchRequest], args: argparse.Namespace) -> dict[str, Any]:
    """The Engine options of system `name` (`split_system`)."""
    scheduler, prefix_caching = split_system(name)
    longest = max(r.prompt_len + r.output_len for r in requests)
    if scheduler in CHUNKING_SCHEDULERS:
        budget = args.token_budget
    else:
        budget = args.baseline_token_budget or max(BASELINE_MIN_BUDGET, max(r.prompt_len for r in requests))
    blocks_per_request = math.ceil(longest / args.block_size)
    default_blocks = min(args.max_num_seqs * blocks_per_request, MAX_KV_TOKENS // args.block_size)
    return {
        "scheduler": scheduler,
        "enable_prefix_caching": prefix_caching,
        "token_budget": budget,
        "max_num_seqs": args.max_num_seqs,
        "block_size": args.block_size,
        "num_kv_blocks": args.num_kv_blocks or max(default_blocks, blocks_per_request),
        "seed": args.seed,
    }


async def start_engines(names: list[str], requests: list[BenchRequest], args: argparse.Namespace,
                        plugins: dict[str, list[object]]) -> dict[str, Engine]:
    engines: dict[str, Engine] = {}
    try:
        for name in names:
            engine = Engine(args.model, plugins=plugins.get(name, []), **engine_options(name, requests, args))
            await engine.start()
            engines[name] = engine
    except BaseException:
        for engine in engines.values():
            await engine.close()
        raise
    return engines


def resolve_model(model: str | None) -> str:
    """The checkpoint folder the engines will load (the converted folder of a .gguf file, the bundled
    default model for None), found by the same plugin hook the engine calls, so the workload can be
    fitted to the model before any engine starts."""
    config = EngineConfig(model=model)
    resolved = PluginManager(config).hook.sarathi_resolve_model(config=config)
    folder = resolved or model
    if folder is None:
        raise ConfigError("no plugin resolves the default model; pass --model")
    return folder


def max_model_len(folder: str) -> int | None:
    value = model_shape(folder).get("max_position_embeddings")
    return int(value) if value else None


def device() -> str:
    """Where the engines run by default ("auto": CUDA when torch sees a GPU), for the machine record."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cost_dtype(engine: Engine) -> str:
    """The dtype the model's weights are counted at: the engine's, "auto" being bfloat16."""
    return "bfloat16" if engine.config.dtype == "auto" else engine.config.dtype


@contextlib.contextmanager
def progress(total: int, what: str) -> Iterator[Any]:
    """A progress bar of finished requests on stderr."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=what, unit="req", file=sys.stderr, leave=False) as bar:
        yield bar


def config_record(args: argparse.Namespace, names: Sequence[str], requests: list[BenchRequest],
                  engines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to rerun the measurement: the options, the engines' settings, the workload."""
    options = {k: v for k, v in vars(args).items() if not callable(v) and k not in ("command", "bench_command")}
    return options | {
        "systems": list(names),
        "engines": engines,
        "prompt_tokens": sum(r.prompt_len for r in requests),
        "output_tokens": sum(r.output_len for r in requests),
        "requests": [(r.prompt_len, r.output_len) for r in requests],
    }


def report(args: argparse.Namespace, result: dict[str, Any], plot: Any, table: Any) -> int:
    """What every bench command ends with: the JSON (`--json`), the plots (`--plot-dir`), then the
    table last on stdout."""
    write_json(args.json, result)
    if args.plot_dir:
        plot(result, args.plot_dir)
    print("\n".join(table(result)))
    return 0


def write_json(path: str | None, result: dict[str, Any]) -> None:
    """Strict JSON: a NaN or infinity (a metric with nothing to measure) is written as null."""
    if path:
        Path(path).write_text(json.dumps(_finite(result), indent=1, default=str), encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
