"""Speculative decoding measured against decoding without it, on the default model, side by side.

One run, the engines alternating within every repeat, medians reported (records in docs/bench/):

- **copy** (answers that repeat or edit the prompt, `speculative_cases.COPY`) and **free chat**
  (`CHAT`), batch 1: each prompt alone, decode tokens/s = tokens after the first over the time from
  the first token to the last, with `speculative="ngram"` and without; ratio of the medians, the
  acceptance rate and the tokens each decode step made;
- **crossover**: the copy prompts B at a time (B = 1, 2, 4, 8) with the batch-size rule off
  (`speculative_disable_by_batch_size=None`), tokens/s over the wall time against no speculation:
  where it stops paying is the rule's default;
- **mixed workload** (`bench.cpu`'s: 32 requests at t=0, prompts 256-768 tokens, 16 sequences, sarathi
  at budget 256) and **batch-16 decode** (16 requests of 48 tokens after 32-token prompts, tokens over
  the wall time): end-to-end tokens/s and P99 time between tokens, with the default rule and without.

Run: `python -m sarathi_sdk.bench.speculative [--model GGUF] [--repeats 3] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import anyio

from .. import Engine, RequestOutput, SamplingParams
from .cpu import mixed_run
from .decode_rate import PROMPT_LEN, token_prompt
from .default_model import default_gguf
from .machine import describe, kernel_variant_of
from .records import final_metrics
from .runner import BackendProbe
from .speculative_cases import CHAT, COPY
from .tasks import gather

MAX_TOKENS = 128
BATCHES = (1, 2, 4, 8)
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, temperature=0)


async def alone(engine: Engine, prompts: Sequence[str]) -> dict[str, float]:
    """Batch-1 decode tokens/s of each prompt run alone (median, and each prompt's own: `p0_tok_s`
    ...), with the step and acceptance counts."""
    before = engine.stats()
    rates, tokens, per_prompt = [], 0, {}
    for i, prompt in enumerate(prompts):
        start = engine.stats()
        out = await _chat(engine, prompt)
        metrics = final_metrics(out)
        assert metrics.first_token_time is not None
        rates.append((len(out.token_ids) - 1) / (metrics.finished_time - metrics.first_token_time))
        tokens += len(out.token_ids)
        per_prompt[f"p{i}_tok_s"] = rates[-1]
        per_prompt[f"p{i}_tokens_per_step"] = _counts(engine, start, len(out.token_ids), 1)["tokens_per_step"]
    return {"tok_s": statistics.median(rates), **_counts(engine, before, tokens, len(prompts)), **per_prompt}


async def together(engine: Engine, prompts: Sequence[str], batch: int) -> dict[str, float]:
    """Tokens/s of `batch` copy prompts decoding at once, over the wall time."""
    before = engine.stats()
    start = time.perf_counter()
    outputs = await gather(*(_chat(engine, prompts[i % len(prompts)]) for i in range(batch)))
    tokens = sum(len(o.token_ids) for o in outputs)
    return {"tok_s": tokens / (time.perf_counter() - start), **_counts(engine, before, tokens, batch)}


async def batch16(engine: Engine) -> dict[str, float]:
    """16 requests of 48 tokens after 32-token prompts: tokens/s over the wall time, P99 TBT."""
    params = SamplingParams(max_tokens=48, temperature=0, ignore_eos=True)
    before = engine.stats()
    start = time.perf_counter()
    outputs = await gather(*(engine.complete(token_prompt(PROMPT_LEN, i), params) for i in range(16)))
    elapsed = time.perf_counter() - start
    tbts = sorted(t for o in outputs for t in final_metrics(o).tbts)
    return {"tok_s": sum(len(o.token_ids) for o in outputs) / elapsed, "tbt_p99": tbts[int(0.99 * (len(tbts) - 1))],
            **_counts(engine, before, sum(len(o.token_ids) for o in outputs), 16)}


async def _chat(engine: Engine, prompt: str) -> RequestOutput:
    outputs = [o async for o in engine.chat([{"role": "user", "content": prompt}], GREEDY)]
    return RequestOutput.concat(outputs)


def _counts(engine: Engine, before: Any, tokens: int, requests: int) -> dict[str, float]:
    after = engine.stats()
    proposed = after.num_proposed_tokens - before.num_proposed_tokens
    accepted = after.num_accepted_tokens - before.num_accepted_tokens
    steps = after.num_steps - before.num_steps - requests  # less one prefill step per request
    return {"acceptance": accepted / proposed if proposed else 0.0, "proposed": proposed, "accepted": accepted,
            "tokens_per_step": (tokens - requests) / max(1, steps)}


async def run(model: str | None, repeats: int) -> dict[str, Any]:
    gguf = model or default_gguf()
    mixed: dict[str, Any] = {"max_num_seqs": 16, "num_kv_blocks": 2048, "block_size": 16, "token_budget": 256}
    probe = BackendProbe()
    engines = {
        "off": Engine(gguf, plugins=[probe], **mixed),
        "ngram": Engine(gguf, speculative="ngram", **mixed),
        "ngram_always": Engine(gguf, speculative="ngram", speculative_disable_by_batch_size=None, **mixed),
    }
    results: dict[str, list[dict[str, float]]] = {}
    for engine in engines.values():
        await engine.start()
    try:
        for repeat in range(repeats):
            order = ("off", "ngram") if repeat % 2 == 0 else ("ngram", "off")
            for name in order:
                results.setdefault(f"copy_{name}", []).append(await alone(engines[name], COPY))
                results.setdefault(f"chat_{name}", []).append(await alone(engines[name], CHAT))
            for batch in BATCHES:
                for name in ("off", "ngram_always") if repeat % 2 == 0 else ("ngram_always", "off"):
                    results.setdefault(f"b{batch}_{name}", []).append(await together(engines[name], COPY, batch))
            for name in order:
                before = engines[name].stats()
                mixed_result = await mixed_run(engines[name], None)
                results.setdefault(f"mixed_{name}", []).append({**mixed_result, **_counts(engines[name], before, 0, 0)})
                results.setdefault(f"batch16_{name}", []).append(await batch16(engines[name]))
        machine = describe("cpu", kernel_variant_of(probe.backend))
    finally:
        for engine in engines.values():
            await engine.close()
    return _summary(results, machine)


def _median(items: Sequence[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(item[key] for item in items) for key in items[0]}


def _summary(results: dict[str, list[dict[str, float]]], machine: dict[str, Any]) -> dict[str, Any]:
    medians = {name: _median(items) for name, items in results.items()}

    def ratio(key: str, on: str, off: str = "off", measure: str = "tok_s") -> float:
        return medians[f"{key}_{on}"][measure] / medians[f"{key}_{off}"][measure]

    return {
        "machine": machine,
        "medians": medians,
        "ratios": {
            "copy_b1": ratio("copy", "ngram"),
            "chat_b1": ratio("chat", "ngram"),
            **{f"copy_b{b}_rule_off": ratio(f"b{b}", "ngram_always") for b in BATCHES},
            "mixed_e2e": ratio("mixed", "ngram", measure="e2e_tok_s"),
            "mixed_tbt_p99": medians["mixed_ngram"]["tbt_p99"] / medians["mixed_off"]["tbt_p99"],
            "batch16": ratio("batch16", "ngram"),
            "batch16_tbt_p99": medians["batch16_ngram"]["tbt_p99"] / medians["batch16_off"]["tbt_p99"],
        },
        "repeats": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled default model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the record to this file")
    args = parser.parse_args(argv)
    record = anyio.run(run, args.model, args.repeats)
    for name, value in record["ratios"].items():
        print(f"{name:24s} {value:6.2f}x")
    for name, values in record["medians"].items():
        print(f"{name:24s} " + "  ".join(f"{k}={v:.3g}" for k, v in values.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
