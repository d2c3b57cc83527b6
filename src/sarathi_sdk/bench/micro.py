"""`sarathi bench micro`: what one step costs, the measurements SARATHI's idea rests on.

- **Decode cost per token, alone and piggybacked.** B requests (prompts of `--context` tokens) decode
  while one long prompt is prefilled in `--chunk`-token chunks (`long_prefill_token_threshold`), so the
  same run holds decode-only steps (B decodes) and hybrid steps (one chunk plus B decodes). A decode
  costs step / B in a decode-only step, and (hybrid step - prefill-only step of the same chunk) / B
  when it rides on the chunk: SARATHI's claim is that the second is a fraction of the first.
- **Prefill cost per token by chunk size.** One `--prompt-tokens` prompt prefilled alone in chunks of
  each size (budget = chunk): time to first token / prompt tokens, and the ratio to the largest chunk.
- **Step time against tokens**: every decode-only, prefill-only and hybrid step measured above, by its
  token count (the batch-size and the token axis in one table).

Step times are `backend.execute` alone (`runner.StepRecorder`), medians over the steps of each kind.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import anyio

from .. import Engine, SamplingParams
from ..errors import ConfigError
from . import plots, setup
from .machine import describe, kernel_variant_of
from .runner import StepRecorder
from .tasks import gather
from .workloads import prompt_token_ids

DECODE_STEPS = 40
"""Tokens each decoding request generates: enough for the long prompt's 4 chunks and decode-only
steps on both sides of them."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("micro", help="decode cost alone and piggybacked; prefill cost by chunk size")
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16", help="decodes per step, comma-separated")
    parser.add_argument("--chunk", type=int, default=256, help="the prefill chunk decodes piggyback on")
    parser.add_argument("--context", type=int, default=128, help="prompt tokens of each decoding request")
    parser.add_argument("--chunks", default="32,64,128,256,512,1024", help="prefill chunk sizes to time")
    parser.add_argument("--prompt-tokens", type=int, default=1024, help="the prompt prefilled in chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the full results to this file")
    parser.add_argument("--plot-dir", help="write PNG plots here (needs matplotlib: the bench extra)")
    parser.set_defaults(bench_run=run)


def _ints(text: str, what: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise ConfigError(f"{what} must be positive integers separated by commas, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    batch_sizes, chunks = _ints(args.batch_sizes, "--batch-sizes"), _ints(args.chunks, "--chunks")
    if min(args.chunk, args.context, args.prompt_tokens) < 1:
        raise ConfigError("--chunk, --context and --prompt-tokens must be >= 1")
    if args.plot_dir:
        plots.require_matplotlib()
    result = anyio.run(micro, batch_sizes, chunks, args, backend="asyncio")
    return setup.report(args, result, plots.micro_plots, table)


async def micro(batch_sizes: list[int], chunks: list[int], args: argparse.Namespace) -> dict[str, Any]:
    vocab = int(setup.model_shape(setup.resolve_model(args.model))["vocab_size"])
    recorder = StepRecorder()
    decode = await decode_costs(args.model, batch_sizes, args.chunk, args.context, vocab, recorder)
    prefill = [await prefill_cost(args.model, chunk, args.prompt_tokens, vocab) for chunk in chunks]
    largest = prefill[-1]["per_token"]
    for p in prefill:
        p["vs_largest_chunk"] = p["per_token"] / largest
    config = {"chunk": args.chunk, "context": args.context, "prompt_tokens": args.prompt_tokens, "model": args.model}
    machine = describe(setup.device(), kernel_variant_of(recorder.backend))
    return {"machine": machine, "config": config, "decode": decode, "prefill": prefill}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def decode_costs(model: str | None, batch_sizes: list[int], chunk: int, context: int, vocab: int,
                       recorder: StepRecorder) -> list[dict[str, Any]]:
    largest = max(batch_sizes)
    long_prompt = 4 * chunk
    engine = Engine(model, token_budget=chunk + largest, max_num_seqs=largest + 1, long_prefill_token_threshold=chunk,
                    num_kv_blocks=(largest + 1) * (-(-(context + long_prompt + 64) // 16)) + 8, plugins=[recorder])
    out = []
    async with engine:
        alone = await _prefill_only_step(engine, recorder, chunk, long_prompt, vocab)
        for batch in batch_sizes:
            first = len(recorder.steps)
            decode_params = SamplingParams(max_tokens=DECODE_STEPS, temperature=0, ignore_eos=True)
            decodes = [engine.complete(prompt_token_ids(context, 1000 * batch + i, vocab), decode_params)
                       for i in range(batch)]
            await gather(*decodes, _long_prefill(engine, recorder, first, batch, long_prompt, vocab))
            steps = recorder.steps[first:]
            only = _median([s.seconds for s in steps if s.decodes == batch and not s.prefill_tokens])
            hybrid = _median([s.seconds for s in steps if s.decodes == batch and s.prefill_tokens == chunk])
            out.append({"batch_size": batch, "decode_only_step": only, "hybrid_step": hybrid,
                        "prefill_only_step": alone, "decode_only_per_token": only / batch,
                        "piggybacked_per_token": (hybrid - alone) / batch})
    return out


async def _long_prefill(engine: Engine, recorder: StepRecorder, first: int, batch: int, prompt: int,
                        vocab: int) -> None:
    """Once the `batch` short prompts all decode, the `prompt`-token prompt whose chunks they ride on."""
    with anyio.fail_after(600):
        await _all_decoding(recorder, first, batch)
    await engine.complete(prompt_token_ids(prompt, 999_999 - batch, vocab),
                          SamplingParams(max_tokens=1, temperature=0, ignore_eos=True))


async def _all_decoding(recorder: StepRecorder, first: int, batch: int) -> None:
    """Return once a step from index `first` on carried `batch` decodes: every short prompt is in."""
    while not any(s.decodes == batch for s in recorder.steps[first:]):
        await anyio.sleep(0.002)


async def _prefill_only_step(engine: Engine, recorder: StepRecorder, chunk: int, prompt: int, vocab: int,
                             repeats: int = 3) -> float:
    """The median prefill-only `chunk`-token step of a `prompt`-token prompt alone, after one warm-up."""
    seconds = []
    for i in range(repeats + 1):
        first = len(recorder.steps)
        await engine.complete(prompt_token_ids(prompt, 777_777 + i, vocab),
                              SamplingParams(max_tokens=1, temperature=0, ignore_eos=True))
        if i:
            seconds += [s.seconds for s in recorder.steps[first:] if s.prefill_tokens == chunk and not s.decodes]
    return _median(seconds)


async def prefill_cost(model: str | None, chunk: int, prompt: int, vocab: int, repeats: int = 3) -> dict[str, Any]:
    """Seconds per prompt token of a `prompt`-token prefill in `chunk`-token steps (median of repeats)."""
    recorder = StepRecorder()
    engine = Engine(model, token_budget=chunk, max_num_seqs=1, num_kv_blocks=-(-(prompt + 16) // 16) + 2,
                    plugins=[recorder])
    totals = []
    async with engine:
        for i in range(repeats + 1):
            first = len(recorder.steps)
            await engine.complete(prompt_token_ids(prompt, 555_555 + i, vocab),
                                  SamplingParams(max_tokens=1, temperature=0, ignore_eos=True))
            totals.append(sum(s.seconds for s in recorder.steps[first:]))
    per_token = statistics.median(totals[1:]) / prompt
    return {"chunk": chunk, "per_token": per_token, "step": per_token * min(chunk, prompt)}


def table(result: dict[str, Any]) -> list[str]:
    chunk = result["config"]["chunk"]
    lines = [f"decode cost per token (ms): alone vs piggybacked on a {chunk}-token chunk "
             f"(prefill-only step {1e3 * result['decode'][0]['prefill_only_step']:.1f} ms)"]
    lines.append(f"{'decodes':>8}{'alone':>10}{'piggyback':>11}{'ratio':>8}{'step alone':>12}{'step hybrid':>13}")
    for d in result["decode"]:
        ratio = d["piggybacked_per_token"] / d["decode_only_per_token"]
        lines.append(f"{d['batch_size']:>8}{1e3 * d['decode_only_per_token']:>10.2f}"
                     f"{1e3 * d['piggybacked_per_token']:>11.2f}{ratio:>8.2f}"
                     f"{1e3 * d['decode_only_step']:>12.1f}{1e3 * d['hybrid_step']:>13.1f}")
    lines.append(f"prefill cost per token (ms) of a {result['config']['prompt_tokens']}-token prompt by chunk size")
    lines.append(f"{'chunk':>8}{'ms/token':>10}{'vs largest':>12}")
    for p in result["prefill"]:
        lines.append(f"{p['chunk']:>8}{1e3 * p['per_token']:>10.3f}{p['vs_largest_chunk']:>11.2f}x")
    return lines
