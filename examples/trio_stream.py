"""Stream an answer under trio: the engine runs on anyio, so any anyio backend can host it.

The same `async with Engine()` and `async for` as under asyncio; only the runner differs.

Run: python examples/trio_stream.py [--model PATH] [--max-tokens N]
"""

import argparse

import trio

from sarathi_sdk import Engine, SamplingParams


async def main(model: str | None, max_tokens: int) -> None:
    async with Engine(model) as engine:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        async for out in engine.chat(messages, SamplingParams(max_tokens=max_tokens, temperature=0)):
            print(out.text, end="", flush=True)
        print(f"\n[{out.finish_reason}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    trio.run(main, args.model, args.max_tokens)
