"""Serve several requests at once, and cancel two of them in the two ways an app can.

Each `generate()` is its own task; the engine batches them (decode-maximal: every step carries all
running decodes plus prefill chunks). Cancelling a request is leaving its stream, here by `break`
after four tokens, or cancelling the task that reads it. Either way the request is aborted and its KV
blocks are free before the next step, which `engine.stats()` shows at the end.

Run: python examples/concurrent_requests.py [--model PATH] [--max-tokens N]
"""

import argparse
import asyncio

from sarathi_sdk import Engine, SamplingParams

PROMPTS = {
    "story": "Once upon a time",
    "recipe": "To bake bread, you need",
    "stopped-early": "The history of Rome",
    "cancelled": "A list of prime numbers:",
}


async def read(engine: Engine, name: str, prompt: str, max_tokens: int) -> str:
    text, reason, num_tokens = "", None, 0
    async for out in engine.generate(prompt, SamplingParams(max_tokens=max_tokens, temperature=0), request_id=name):
        text, reason, num_tokens = text + out.text, out.finish_reason, num_tokens + len(out.token_ids)
        if name == "stopped-early" and num_tokens >= 4:
            reason = "left the stream"
            break  # leaving the stream aborts the request
    return f"{name}: {reason}: {text.strip()!r}"


async def main(model: str | None, max_tokens: int) -> None:
    async with Engine(model) as engine:
        tasks = {name: asyncio.create_task(read(engine, name, p, max_tokens)) for name, p in PROMPTS.items()}
        while engine.stats().num_steps < 2:  # let every request start before cancelling one
            await asyncio.sleep(0.01)
        tasks["cancelled"].cancel()
        for name, task in tasks.items():
            try:
                print(await task)
            except asyncio.CancelledError:
                print(f"{name}: task cancelled")
        stats = engine.stats()
        print(f"running {stats.num_running}, waiting {stats.num_waiting}, "
              f"KV blocks free {stats.kv_blocks_free} of {stats.kv_blocks_total}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens))
