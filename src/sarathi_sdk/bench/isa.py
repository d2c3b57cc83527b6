"""`python -m sarathi_sdk.bench.cpu --isa`: the CPU fast path per ISA level, beside llama.cpp built for each.

For each level asked for (default: avx512, avx2 and the torch path, `SARATHI_CPU_KERNELS=0`, on x86;
neon-dotprod, neon and the torch path on ARM64), a
worker process of its own (`isa_worker`, `isa_child`: the kernel module is one per process) with
an engine on that level's build. One run, repeats alternating between the levels (each repeat starts
with another one), medians and paired ratios reported (`isa_report`):

- our batch-1 and batch-16 decode tokens/s (`decode_rate`), and llama.cpp's batch-1 at 2 threads on
  the same GGUF file, run by the interpreter `--llamacpp-python LEVEL=PYTHON` names for the level (a
  venv with llama-cpp-python built for it; default: this interpreter, where it has llama_cpp);
- the same with one busy process per core beside each measurement (`contention`);
- the greedy tokens of the agreement prompt set on each level, agreement between every two levels.

A level this CPU lacks falls back to the torch path inside its worker; it is reported as skipped,
with the build its engine ran instead, never measured under the level's name. The JSON record's
`machine.kernel_variant` holds each level's build. Imports only the standard library and the
benchmark's own modules.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import statistics
import sys
from typing import Any

from .contention import busy_cores
from .decode_rate import DECODE_TOKENS, PROMPT_LEN, token_prompt
from .default_model import default_gguf
from .greedy import agreement
from .isa_report import ratios, report
from .isa_worker import TORCH, LevelWorker, paused
from .llamacpp import llamacpp_rates
from .machine import describe

KNOWN = ("avx512", "avx2", "neon-dotprod", "neon", "portable", TORCH)
LEVELS = ("neon-dotprod", "neon", TORCH) if platform.machine() in ("aarch64", "arm64") else ("avx512", "avx2", TORCH)
"""The levels measured by default: this architecture's fast ones and the torch path."""
ALIASES = {"x86-64-v4": "avx512", "x86-64-v3": "avx2", "x86-64-v2": "portable", "armv8.2-a+dotprod": "neon-dotprod",
           "armv8-a": "neon"}
"""The -march names `SARATHI_CPU_ARCH` also takes, onto the level names the backend reports."""
LLAMACPP_THREADS = 2


def add_options(parser: argparse.ArgumentParser) -> None:
    """`bench.cpu`'s options for `--isa` (`--model`, `--repeats` and `--json` are shared)."""
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help="with --isa: comma-separated ISA levels (avx512, avx2, neon-dotprod, neon, portable or "
                             "their -march names) and torch (the kernels off); default %(default)s")
    parser.add_argument("--llamacpp-python", action="append", default=[], metavar="LEVEL=PYTHON",
                        help="with --isa: the interpreter whose llama-cpp-python is built for LEVEL (repeatable)")


def level_name(name: str) -> str:
    name = name.strip()
    return ALIASES.get(name, name)


def llamacpp_pythons(levels: list[str], options: list[str]) -> dict[str, str]:
    """The llama.cpp interpreter of each level: the one `options` name for it, else (kernel levels
    only) this interpreter where it has llama_cpp; a level with neither has no llama.cpp column."""
    named: dict[str, str] = {}
    for option in options:
        level, sep, python = option.partition("=")
        if not sep or level_name(level) not in levels or not os.access(python, os.X_OK):
            raise SystemExit(f"--llamacpp-python {option!r}: want LEVEL=PYTHON, LEVEL one of {', '.join(levels)} "
                             "and PYTHON an executable interpreter")
        named[level_name(level)] = python
    here = sys.executable if importlib.util.find_spec("llama_cpp") is not None else None
    fallback = {level: here for level in levels if level != TORCH and here is not None}
    return fallback | named


def run(model: str | None, levels: list[str], pythons: dict[str, str], repeats: int) -> dict[str, Any]:
    gguf = model or default_gguf()
    workers = {level: LevelWorker(level, gguf) for level in levels}  # they build their kernels side by side
    variants: dict[str, str] = {}
    try:
        for level, worker in workers.items():
            variants[level] = worker.ready()
        ran = [level for level in levels if variants[level] == level]
        runs: dict[str, dict[str, list[float]]] = {level: {} for level in ran}
        lc_runs: dict[str, dict[str, list[float]]] = {python: {} for python in set(pythons.values())}
        for repeat in range(repeats if ran else 0):
            done: set[tuple[str, bool]] = set()  # (interpreter, loaded) measured this repeat
            for level in ran[repeat % len(ran):] + ran[:repeat % len(ran)]:
                for loaded in (False, True):
                    prefix = "loaded_" if loaded else ""
                    others = [worker for name, worker in workers.items() if name != level]
                    with paused(others), busy_cores() if loaded else contextlib.nullcontext():
                        rates = workers[level].ask("decode")
                    for key, rate in rates.items():
                        runs[level].setdefault(prefix + key, []).append(rate)
                    python = pythons.get(level)
                    if python is not None and (python, loaded) not in done:
                        done.add((python, loaded))
                        with paused(workers.values()), busy_cores() if loaded else contextlib.nullcontext():
                            lc = llamacpp_rates(gguf, LLAMACPP_THREADS, 1, token_prompt(PROMPT_LEN, 0), [],
                                                DECODE_TOKENS, python)
                        assert lc is not None  # an interpreter was given
                        lc_runs[python].setdefault(prefix + "decode", []).append(lc["decode_tok_s"])
        tokens = {level: workers[level].ask("greedy")["tokens"] for level in ran}
    finally:
        for worker in workers.values():
            worker.close()
    return _summary(gguf, levels, pythons, repeats, variants, runs, lc_runs, tokens)


def _summary(gguf: str, levels: list[str], pythons: dict[str, str], repeats: int, variants: dict[str, str],
             runs: dict[str, dict[str, list[float]]], lc_runs: dict[str, dict[str, list[float]]],
             tokens: dict[str, list[list[int]]]) -> dict[str, Any]:
    measured: dict[str, dict[str, Any]] = {}
    for level, level_runs in runs.items():
        data: dict[str, Any] = {"kernel_variant": variants[level], "runs": level_runs}
        data |= {f"{key}_tok_s": statistics.median(values) for key, values in level_runs.items()}
        if level in pythons:
            lc = lc_runs[pythons[level]]
            data["llamacpp"] = {"python": pythons[level], "threads": LLAMACPP_THREADS, "runs": lc,
                                "decode_tok_s": statistics.median(lc["decode"]),
                                "loaded_decode_tok_s": statistics.median(lc["loaded_decode"])}
        measured[level] = data
    return {
        "machine": describe("cpu", {level: variants[level] for level in levels}),
        "config": {"model": gguf, "levels": levels, "repeats": repeats, "llamacpp_python": pythons,
                   "busy_processes": os.cpu_count(), "prompt_len": PROMPT_LEN, "decode_tokens": DECODE_TOKENS},
        "skipped": {level: f"its worker's engine ran kernel_variant={variants[level]!r} (this CPU lacks the level, "
                           "or its build failed: the worker's log says which)"
                    for level in levels if variants[level] != level},
        "levels": measured,
        "agreement": {f"{a}/{b}": agreement(tokens[a], tokens[b]) for a, b in itertools.combinations(tokens, 2)},
        "greedy_tokens": tokens,  # where two builds part, prompt by prompt
        "ratios": ratios(measured),
    }


def main(args: argparse.Namespace) -> int:
    levels = list(dict.fromkeys(level_name(name) for name in args.levels.split(",") if name.strip()))
    unknown = [level for level in levels if level not in KNOWN]
    if not levels or unknown or args.repeats < 1:
        raise SystemExit(f"--levels takes {', '.join(KNOWN)} (or their -march names), got {args.levels!r}; "
                         "--repeats at least 1")
    summary = run(args.model, levels, llamacpp_pythons(levels, args.llamacpp_python), args.repeats)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    print("\n".join(report(summary)))
    return 0
