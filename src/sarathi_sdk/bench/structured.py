"""`python -m sarathi_sdk.bench.structured`: structured outputs on a real model (default: the bundled
SmolLM2-135M-Instruct): are the outputs valid, what does a constraint cost per decode step, and what
does compiling one cost. One engine, one process, three measurements:

- validity: ten JSON schemas (nested objects, arrays with minItems/maxItems, enums, bounded integers
  and numbers, string patterns, optional fields, booleans), `--requests` chat requests each at
  temperature 1 (a seed per request), a schema's requests submitted together so they share steps.
  Per schema: how many finished "stop" (the grammar complete, then end of sequence), how many
  "length" (cut at `--max-tokens`, an unfinished object: not a validity failure), and how many "stop"
  outputs `json.loads` and `jsonschema.validate` accept. The goal is all of them; a "stop" output
  that fails is printed whole, since it is a bug.
- decode throughput with a JSON-schema constraint against without, at each `--batches` size: the same
  chat prompts, greedy, `--decode-tokens` tokens; the unconstrained requests ignore EOS so they decode
  as long as the constrained ones can. A constrained request may still end first, so throughput is
  taken per step, not per request: the time between consecutive step ends (`sarathi_on_step_end`) of
  the steps that decode the whole batch and prefill nothing. That interval holds the step's grammar
  masks (filled on the event loop) and their use in the sampler, and none of the prefill or of the
  tail after a constrained request finished. Tokens per second = batch / median step time; turns
  alternate the two (the order swapped every turn, so drift falls on both), after one turn of each
  that is not counted; each turn's median is in the record, to show the spread. Goal: ratio >= 0.9.
- compiling: each schema's first request alone: the time inside the backend's `compile`, and the
  time to the first output of that request and of a repeat, which the compile cache should serve
  (an unconstrained request's is the floor). The engine's first constraint is apart: the bundled
  backend also imports xgrammar then and reads the tokenizer's vocabulary into it. Then `--requests`
  concurrent first requests of one new schema, and the compiles they cost (1 when the backend
  compiles a constraint once however many ask at once); the backend's `compiles` and `cache_hits`
  at the end.

`--json PATH` writes the record: machine, config, the three sections, the printed tables and the
load average before and after (another process on a small machine moves step times; this says
whether the run was quiet). Imports the standard library, anyio, the public `sarathi_sdk` API and the benchmark's own
modules; jsonschema (a test dependency) when validating.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio

from .. import (
    Engine,
    EngineStats,
    GrammarMatcher,
    SamplingParams,
    ScheduledBatch,
    StructuredOutputBackend,
    StructuredOutputsParams,
    hookimpl,
)
from .machine import describe, kernel_variant_of
from .structured_cases import CASES, RECIPE, Case, recipe_prompt
from .runner import BackendProbe
from .tasks import gather


@runtime_checkable
class Counted(Protocol):
    """A backend that counts its work, as the bundled `XGrammarBackend` does."""

    compiles: int
    cache_hits: int


class _TimedCompiles:
    """The engine's structured-output backend with every `compile` timed into `seconds`."""

    def __init__(self, inner: StructuredOutputBackend, seconds: list[float]) -> None:
        self.inner = inner
        self._seconds = seconds

    def compile(self, params: StructuredOutputsParams) -> Any:
        started = time.perf_counter()
        compiled = self.inner.compile(params)
        self._seconds.append(time.perf_counter() - started)
        return compiled

    def matcher(self, compiled: Any) -> GrammarMatcher:
        return self.inner.matcher(compiled)

    def allocate_bitmask(self, rows: int) -> Any:
        return self.inner.allocate_bitmask(rows)


class Probe:
    """Plugin: times the structured-output backend's compiles and records when each step ended."""

    def __init__(self) -> None:
        self.backend: _TimedCompiles | None = None
        self.compile_seconds: list[float] = []
        self.steps: list[tuple[float, int, int]] = []
        """(perf_counter at its end, decodes, prefill chunks) per step."""

    @hookimpl(wrapper=True)
    def sarathi_make_structured_output_backend(self) -> Generator[
            None, StructuredOutputBackend | None, StructuredOutputBackend | None]:
        inner = yield
        self.backend = None if inner is None else _TimedCompiles(inner, self.compile_seconds)
        return self.backend

    @hookimpl
    def sarathi_on_step_end(self, batch: ScheduledBatch, stats: EngineStats) -> None:
        self.steps.append((time.perf_counter(), len(batch.decodes), len(batch.prefills)))

    def counters(self) -> dict[str, int]:
        """The backend's `compiles` and `cache_hits`; empty for a backend that does not count."""
        inner = None if self.backend is None else self.backend.inner
        return {"compiles": inner.compiles, "cache_hits": inner.cache_hits} if isinstance(inner, Counted) else {}


@dataclass(frozen=True, slots=True)
class Reply:
    """One chat request's whole output, as a client saw it."""

    text: str
    finish_reason: str
    tokens: int
    first_output_s: float
    """From the call to the first output with a token: tokenizing, compiling, queueing, prefill."""


async def chat(engine: Engine, prompt: str, params: SamplingParams) -> Reply:
    """One user message through `engine.chat` (the chat template, as an app asks), read to the end."""
    started = time.perf_counter()
    first, texts, tokens, reason = 0.0, [], 0, ""
    async for out in engine.chat([{"role": "user", "content": prompt}], params):
        if out.token_ids and not tokens:
            first = time.perf_counter() - started
        texts.append(out.text)
        tokens += len(out.token_ids)
        reason = str(out.finish_reason or "")
    return Reply("".join(texts), reason, tokens, first)


def constraint(schema: Mapping[str, Any]) -> StructuredOutputsParams:
    """A fresh `StructuredOutputsParams` per request, as separate clients would send the same schema."""
    return StructuredOutputsParams(json=dict(schema))


def validity_error(text: str, schema: Mapping[str, Any]) -> str | None:
    """Why `text` is not a JSON document valid under `schema`; None when it is."""
    import jsonschema  # type: ignore[import-untyped]  # a test dependency without type information

    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


async def validity(engine: Engine, cases: Sequence[Case], requests: int, max_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        params = [SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=seed,
                                 structured_outputs=constraint(case.schema)) for seed in range(requests)]
        replies = await gather(*(chat(engine, case.prompt, p) for p in params))
        stopped = [r for r in replies if r.finish_reason == "stop"]
        invalid = [{"text": r.text, "error": error} for r in stopped if (error := validity_error(r.text, case.schema))]
        rows.append({"schema": case.name, "requests": requests, "stop": len(stopped),
                     "length": sum(r.finish_reason == "length" for r in replies), "valid": len(stopped) - len(invalid),
                     "mean_tokens": statistics.fmean(r.tokens for r in replies), "invalid": invalid,
                     "example": (stopped or replies)[0].text,
                     "length_example": next((r.text for r in replies if r.finish_reason == "length"), None)})
    return rows


def full_batch_steps(steps: Sequence[tuple[float, int, int]], batch: int) -> list[float]:
    """Seconds from the previous step's end to the end of each step that decoded `batch` rows and
    prefilled nothing."""
    return [end - before for (before, _, _), (end, decodes, prefills) in itertools.pairwise(steps)
            if decodes == batch and prefills == 0]


async def throughput(engine: Engine, probe: Probe, batches: Sequence[int], turns: int,
                     decode_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        modes = {
            "unconstrained": SamplingParams(max_tokens=decode_tokens, temperature=0, ignore_eos=True),
            "constrained": SamplingParams(max_tokens=decode_tokens, temperature=0,
                                          structured_outputs=constraint(RECIPE)),
        }
        steps: dict[str, list[float]] = {mode: [] for mode in modes}
        turn_medians: dict[str, list[float]] = {mode: [] for mode in modes}
        tokens: dict[str, list[int]] = {mode: [] for mode in modes}
        for turn in range(-1, turns):  # turn -1 warms this batch size's shapes and is not counted
            for mode in (list(modes) if turn % 2 == 0 else list(modes)[::-1]):
                probe.steps.clear()
                replies = await gather(*(chat(engine, recipe_prompt(i), modes[mode]) for i in range(batch)))
                if turn >= 0:
                    measured = full_batch_steps(probe.steps, batch)
                    steps[mode] += measured
                    turn_medians[mode].append(statistics.median(measured) * 1e3)
                    tokens[mode] += [r.tokens for r in replies]
        row: dict[str, Any] = {"batch": batch}
        for mode in modes:
            step = statistics.median(steps[mode])
            row[mode] = {"step_ms": step * 1e3, "tokens_per_s": batch / step, "steps_measured": len(steps[mode]),
                         "turn_step_ms": turn_medians[mode], "mean_tokens": statistics.fmean(tokens[mode])}
        row["ratio"] = row["constrained"]["tokens_per_s"] / row["unconstrained"]["tokens_per_s"]
        rows.append(row)
    return rows


async def compiling(engine: Engine, probe: Probe, cases: Sequence[Case], concurrent: int) -> dict[str, Any]:
    async def first_and_repeat(params: StructuredOutputsParams) -> dict[str, Any]:
        before = probe.counters()
        constrained = SamplingParams(max_tokens=1, temperature=0, structured_outputs=params)
        first = await chat(engine, "Hello", constrained)
        compile_s = probe.compile_seconds[-1]
        middle = probe.counters()
        repeat = await chat(engine, "Hello", constrained)
        after = probe.counters()
        return {"compile_ms": compile_s * 1e3, "first_output_ms": first.first_output_s * 1e3,
                "repeat_output_ms": repeat.first_output_s * 1e3,
                "compiled_first": middle.get("compiles", 0) - before.get("compiles", 0),
                "hit_on_repeat": after.get("cache_hits", 0) - middle.get("cache_hits", 0)}

    one_token = SamplingParams(max_tokens=1, temperature=0)
    await chat(engine, "Hello", one_token)  # the engine's first request warms what every later one finds warm
    unconstrained = await chat(engine, "Hello", one_token)
    setup = await first_and_repeat(StructuredOutputsParams(json_object=True))
    schemas = [{"schema": case.name, **await first_and_repeat(constraint(case.schema))} for case in cases]
    before = probe.counters().get("compiles", 0)
    await gather(*(chat(engine, recipe_prompt(i), SamplingParams(max_tokens=1, temperature=0,
                                                                  structured_outputs=constraint(RECIPE)))
                   for i in range(concurrent)))
    return {"unconstrained_first_output_ms": unconstrained.first_output_s * 1e3, "first_constraint": setup,
            "schemas": schemas,
            "concurrent_first": {"requests": concurrent, "compiles": probe.counters().get("compiles", 0) - before}}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    probe, model = Probe(), BackendProbe()
    cases = CASES[: args.schemas]
    async with Engine(args.model, plugins=[probe, model]) as engine:
        compile_record = await compiling(engine, probe, cases, args.requests)
        throughput_rows = await throughput(engine, probe, args.batches, args.turns, args.decode_tokens)
        validity_rows = await validity(engine, cases, args.requests, args.max_tokens)
        compile_record["counters"] = probe.counters()
        config = {"model": args.model or "default", "requests": args.requests, "schemas": [c.name for c in cases],
                  "max_tokens": args.max_tokens, "batches": list(args.batches), "turns": args.turns,
                  "decode_tokens": args.decode_tokens, "token_budget": engine.config.token_budget}
    return {"machine": describe(kernel_variant=kernel_variant_of(model.backend)), "config": config,
            "validity": validity_rows, "throughput": throughput_rows, "compile": compile_record,
            "load_average": {"before": load_before, "after": os.getloadavg()}}


def report(record: Mapping[str, Any]) -> str:
    """The tables a run prints, which its record also keeps."""
    lines = ["| schema | requests | stop | length | stop and valid | mean tokens |", "|---|---|---|---|---|---|"]
    for row in record["validity"]:
        lines.append(f"| {row['schema']} | {row['requests']} | {row['stop']} | {row['length']} | "
                     f"{row['valid']} / {row['stop']} | {row['mean_tokens']:.0f} |")
    for row in record["validity"]:
        lines += [f"INVALID {row['schema']}: {bad['error']}\n  {bad['text']!r}" for bad in row["invalid"]]
    lines += ["", "| batch | unconstrained tok/s | constrained tok/s | ratio | step ms (unc. / con.) "
              "| full steps (unc. / con.) |", "|---|---|---|---|---|---|"]
    for row in record["throughput"]:
        free, held = row["unconstrained"], row["constrained"]
        lines.append(f"| {row['batch']} | {free['tokens_per_s']:.1f} | {held['tokens_per_s']:.1f} | "
                     f"{row['ratio']:.3f}x | {free['step_ms']:.2f} / {held['step_ms']:.2f} | "
                     f"{free['steps_measured']} / {held['steps_measured']} |")
    comp = record["compile"]
    lines += ["", "| schema | compile ms | first output ms | repeat output ms | compiled on first "
              "| cache hit on repeat |", "|---|---|---|---|---|---|"]
    for name, row in [("json_object (engine's first)", comp["first_constraint"]),
                      *((r["schema"], r) for r in comp["schemas"])]:
        lines.append(f"| {name} | {row['compile_ms']:.1f} | {row['first_output_ms']:.1f} | "
                     f"{row['repeat_output_ms']:.1f} | {row['compiled_first']} | {row['hit_on_repeat']} |")
    concurrent, load = comp["concurrent_first"], record["load_average"]
    lines += ["", f"unconstrained first output: {comp['unconstrained_first_output_ms']:.1f} ms",
              f"{concurrent['requests']} concurrent first requests of a new schema: {concurrent['compiles']} compiles",
              f"load average (1 min) before / after: {load['before'][0]:.2f} / {load['after'][0]:.2f}",
              "backend counters: " + ", ".join(f"{k} {v}" for k, v in comp["counters"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.structured", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a GGUF file or checkpoint folder (default: the bundled model)")
    parser.add_argument("--requests", type=int, default=20, help="requests per schema in the validity run")
    parser.add_argument("--schemas", type=int, default=len(CASES), help=f"the first N of the {len(CASES)} schemas")
    parser.add_argument("--max-tokens", type=int, default=256, help="max_tokens of the validity run's requests")
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 16],
                        help="batch sizes of the throughput run, comma-separated")
    parser.add_argument("--turns", type=int, default=5, help="throughput turns per batch size and mode")
    parser.add_argument("--decode-tokens", type=int, default=64, help="max_tokens of the throughput run's requests")
    parser.add_argument("--json", type=Path, help="write the record here")
    args = parser.parse_args(argv)
    record = anyio.run(measure, args)
    record["table"] = report(record)
    print(record["table"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
