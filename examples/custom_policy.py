"""A custom batch policy as a plugin: shortest prompt first, on top of the bundled SARATHI policy.

Runs on FakeBackend, so no model is needed: python examples/custom_policy.py
"""

import asyncio

from sarathi_scheduling import SarathiPolicy
from sarathi_sdk import Engine, SamplingParams, hookimpl
from sarathi_sdk.testing import FakeBackend


class ShortestPromptFirst(SarathiPolicy):
    """Serves requests shortest prompt first; everything else is SARATHI's.

    `sort_key` is the policy's one knob for order: the queues are kept sorted by it as requests
    arrive (no re-sort per step), the smallest key is admitted first, and the largest running key is
    the one preempted when memory runs out. Ties keep arrival order.
    """

    def __init__(self, config, kv_cache_manager):
        super().__init__(config, kv_cache_manager)
        self.sort_key = lambda request: (len(request.prompt_token_ids), request.arrival_index)


class ShortestFirstPlugin:
    @hookimpl
    def sarathi_register_schedulers(self, register):
        register("shortest-first", ShortestPromptFirst)


class PrintSteps:
    @hookimpl
    def sarathi_on_step_end(self, batch, stats):
        chunks = ", ".join(f"{c.request_id}:{len(c.token_ids)}" for c in batch.prefills)
        print(f"step {stats.num_steps}: {len(batch.decodes)} decodes, prefill chunks [{chunks}]")


async def main() -> None:
    plugins = [ShortestFirstPlugin(), PrintSteps()]
    async with Engine(backend=FakeBackend(), scheduler="shortest-first", token_budget=32, plugins=plugins) as engine:
        prompts = {"long": [1] * 50, "short": [2] * 5, "medium": [3] * 20}
        results = await asyncio.gather(
            *(engine.complete(p, SamplingParams(max_tokens=3), request_id=rid) for rid, p in prompts.items())
        )
        for r in results:
            print(r.request_id, "first token after", f"{r.metrics.ttft * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
