"""`python -m sarathi_sdk.bench.prefill_weights`: prompt time with the weights a GGUF file stores
quantized against the same model's dense bf16 weights.

With `quantization="auto"` a module whose weight the file stores quantized keeps only its codes, and a
prefill pass multiplies them through `PackedWeight.gemm` (tiles dequantized into cache inside the
product on the avx512 build; the whole weight dequantized for torch's GEMM elsewhere); with `quantization="none"` every weight is dense bf16,
packed once for oneDNN. Two engines in one process, one prompt each turn (alternating, 7 turns),
`max_tokens=1`: the time to the first token is the prefill. Prints each median and their ratio, and
each backend's prefill pass cost as a line fitted over 32-240-token prompts (`pass_cost.fit_line`):
the fixed cost of a pass, which SARATHI pays once per chunk, and the cost per token.

Imports the standard library, anyio and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

from sarathi_sdk import Engine, SamplingParams

from .decode_cost import fit_line
from .pass_cost import prompt_batch
from .runner import BackendProbe

SENTENCE = "The quick brown fox jumps over the lazy dog."
"""The prompt is this sentence repeated: 40 times are 400 tokens of the default model, two prefill
chunks at its CPU token budget of 256."""


FIT_LENGTHS = (32, 64, 128, 240)
FIT_FIRST_ID = 1000
"""`pass_cost.prompt_batch`'s prompts are token ids 1000, 1001, ...: a smaller vocabulary gets no fit."""


async def measure(model: str | None, turns: int, prompt: str) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]]]:
    times: dict[str, list[float]] = {"auto": [], "none": []}
    probes = {mode: BackendProbe() for mode in times}
    engines = {mode: Engine(model, quantization=mode, max_num_seqs=1, num_kv_blocks=64, enable_prefix_caching=False,
                            plugins=[probes[mode]])
               for mode in times}
    for engine in engines.values():
        await engine.__aenter__()
    try:
        params = SamplingParams(max_tokens=1, temperature=0)
        for _ in range(turns):
            for mode, engine in engines.items():
                started = time.perf_counter()
                await engine.complete(prompt, params)
                times[mode].append(time.perf_counter() - started)
        lines = {}
        for mode, probe in probes.items():
            backend = probe.backend
            vocab = None if backend is None else backend.kv_cache_spec(engines[mode].config).vocab_size
            if backend is not None and (vocab is None or vocab >= FIT_FIRST_ID + max(FIT_LENGTHS)):
                batches = [prompt_batch(n, engines[mode].config.block_size) for n in FIT_LENGTHS]
                lines[mode] = await anyio.to_thread.run_sync(fit_line, backend, batches, FIT_LENGTHS, 7)
    finally:
        for engine in engines.values():
            await engine.__aexit__(None, None, None)
    return times, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.prefill_weights", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled default model)")
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--sentences", type=int, default=40, help="the prompt's length, in sentences of ten words")
    args = parser.parse_args(argv)
    times, lines = anyio.run(measure, args.model, args.turns, " ".join([SENTENCE] * args.sentences))
    auto, none = statistics.median(times["auto"]), statistics.median(times["none"])
    print(f"quantized weights (codes only):                       median {auto * 1e3:.1f} ms")
    print(f"dense bf16 weights (prepacked):                       median {none * 1e3:.1f} ms")
    for mode, (fixed, per_token) in lines.items():
        print(f"prefill pass, {mode:4s}: fixed {fixed:.1f} ms + {per_token:.3f} ms per token")
    print(f"ratio: {auto / none:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
