"""The smallest program: ask the bundled default model a question and stream its answer."""

import asyncio

from sarathi_sdk import Engine, SamplingParams


async def main() -> None:
    async with Engine() as engine:  # no model given: the bundled SmolLM2-135M-Instruct
        question = [{"role": "user", "content": "What is the capital of France?"}]
        async for out in engine.chat(question, SamplingParams(max_tokens=32, temperature=0)):
            print(out.text, end="", flush=True)  # only the text new since the last output
    print()


if __name__ == "__main__":
    asyncio.run(main())
