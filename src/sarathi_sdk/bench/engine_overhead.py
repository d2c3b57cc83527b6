"""What the engine itself costs per step: everything but the model, measured with a backend that costs
nothing.

Between two model steps the engine schedules, updates the policy, detokenizes and hands every request
its delta through its stream, and each consumer task wakes to read it. On a GPU a decode step of a
small model takes a few milliseconds, so this time is what stands between the hardware and its users.
The benchmark streams N concurrent requests through `Engine` over a zero-cost backend and reports the
median wall time per step and per request-step.

Run: `python -m sarathi_sdk.bench.engine_overhead [--sizes 16 128 512] [--repeats 3] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import anyio

from .. import Engine, EngineConfig, KVCacheSpec, SamplingParams, ScheduledBatch, StepOutput
from .tasks import gather

PROMPT_LEN = 64
NEW_TOKENS = 64


class InstantBackend:
    """Samples token 1 for every request, at once: the engine's cost is all that remains."""

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        return KVCacheSpec(bytes_per_block=0, num_blocks=1 << 20, vocab_size=2)

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        pass

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        sampled = {c.request_id: 1 for c in batch.prefills if c.is_last_chunk}
        sampled.update((d.request_id, 1) for d in batch.decodes)
        return StepOutput(step_id=batch.step_id, sampled=sampled)

    def close(self) -> None:
        pass


async def per_step_seconds(num_requests: int) -> float:
    """Wall time of streaming `num_requests` requests to the end, divided by the steps it took."""
    params = SamplingParams(max_tokens=NEW_TOKENS)
    async with Engine(backend=InstantBackend(), token_budget=max(512, num_requests), max_num_seqs=num_requests,
                      block_plugins=("sarathi_models", "sarathi_tokenizers")) as engine:

        async def consume() -> None:
            async for _ in engine.generate([1] * PROMPT_LEN, params):
                pass

        start = time.perf_counter()
        await gather(*(consume() for _ in range(num_requests)))
        return (time.perf_counter() - start) / engine.stats().num_steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 128, 512], help="concurrent requests")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the full results as JSON to this file")
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        runs = [anyio.run(per_step_seconds, n, backend="asyncio") for _ in range(args.repeats)]
        results.append({"num_requests": n, "step_s": statistics.median(runs), "runs_s": runs})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"prompt_len": PROMPT_LEN, "new_tokens": NEW_TOKENS, "results": results}, f, indent=2)
    print("engine cost per step with a zero-cost backend (median of repeats)")
    print(f"{'requests':>8} {'ms/step':>9} {'us/request-step':>16}")
    for r in results:
        print(f"{r['num_requests']:>8} {r['step_s'] * 1e3:>9.3f} {r['step_s'] * 1e6 / r['num_requests']:>16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
