"""Use the installed plugin: allow its entry point, then select its scheduler by name.

Install it first (from this folder): pip install . ; then: python demo.py
Runs on FakeBackend, so the order of service shows without a model: the requests arrive longest
first, and the shortest prompt gets its first token first.
"""

import asyncio

from sarathi_sdk import Engine, SamplingParams
from sarathi_sdk.testing import FakeBackend


async def main() -> None:
    engine = Engine(backend=FakeBackend(), scheduler="shortest-first", token_budget=16,
                    load_entrypoint_plugins=("shortest_first",))
    async with engine:
        print("entry-point plugins:", [n for n in engine.plugin_manager.plugin_names() if n == "shortest_first"])
        prompts = {"long": [1] * 60, "medium": [2] * 20, "short": [3] * 4}
        results = await asyncio.gather(
            *(engine.complete(p, SamplingParams(max_tokens=2), request_id=name) for name, p in prompts.items())
        )
        order = sorted(results, key=lambda r: r.metrics.first_token_time)
        print("first tokens:", " < ".join(r.request_id for r in order))


if __name__ == "__main__":
    asyncio.run(main())
