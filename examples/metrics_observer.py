"""An observer plugin that measures what the scheduler did: step sizes, TTFT, time between tokens.

Observers are plain objects with `@hookimpl` methods, passed as `Engine(plugins=[...])`. They are told
of events (a request added, a step ended, a request finished, the engine stopping) and never called
per token; an exception in one is logged and the engine goes on. Hooks run on the event-loop thread
between steps: keep them cheap and never block in them.

Run: python examples/metrics_observer.py [--model PATH] [--max-tokens N]
"""

import argparse
import asyncio
import statistics

from sarathi_sdk import Engine, SamplingParams, hookimpl


class SchedulerMetrics:
    """Collects per-step batch composition and per-request latencies; prints a summary at stop."""

    def __init__(self) -> None:
        self.step_tokens: list[int] = []
        self.mixed_steps = 0
        self.ttfts: list[float] = []
        self.tbts: list[float] = []

    @hookimpl
    def sarathi_on_step_end(self, batch, stats):
        self.step_tokens.append(batch.num_tokens)
        self.mixed_steps += bool(batch.prefills and batch.decodes)  # decodes piggybacking on a chunk

    @hookimpl
    def sarathi_on_request_finished(self, request_id, output):
        if output.metrics.ttft is not None:
            self.ttfts.append(output.metrics.ttft)
        self.tbts.extend(output.metrics.tbts)

    @hookimpl
    def sarathi_on_engine_stop(self, stats):
        print(f"steps: {len(self.step_tokens)}, mixed prefill+decode steps: {self.mixed_steps}, "
              f"largest step: {max(self.step_tokens, default=0)} tokens")
        if self.ttfts and self.tbts:
            print(f"requests: {len(self.ttfts)}, median TTFT {statistics.median(self.ttfts) * 1000:.0f} ms, "
                  f"median TBT {statistics.median(self.tbts) * 1000:.0f} ms")


async def main(model: str | None, max_tokens: int) -> None:
    prompts = ["The sun is", "Write a poem about the sea. " * 20, "List three colors:"]
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    async with Engine(model, token_budget=64, plugins=[SchedulerMetrics()]) as engine:
        await asyncio.gather(*(engine.complete(p, params) for p in prompts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens))
