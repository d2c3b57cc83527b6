"""Speculative decoding: the same answer in fewer steps when it copies from the prompt.

`speculative="ngram"` proposes, for each decode, the tokens that followed its last few tokens where
they occur earlier in the prompt or the answer; the next step checks them all in one pass and keeps
those the model would have written itself. The answer is the one decoding without it gives; what
changes is how many steps it takes, which `engine.stats()` counts.

Run: python examples/speculative.py [--model PATH] [--max-tokens N]
"""

import argparse
import asyncio

from sarathi_sdk import Engine, SamplingParams

TEXT = ("The James Webb Space Telescope is a space telescope designed to conduct infrared astronomy. "
        "Its instruments allow it to view objects too old, distant, or faint for the Hubble Space Telescope.")


async def answer(model: str | None, max_tokens: int, speculative: str | None) -> None:
    question = [{"role": "user", "content": f"Repeat the following text exactly, word for word:\n\n{TEXT}"}]
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    async with Engine(model, speculative=speculative) as engine:  # no model: the bundled SmolLM2
        text = "".join([out.text async for out in engine.chat(question, params)])
        stats = engine.stats()
    print(f"speculative={speculative}: {stats.num_steps} steps, {stats.num_accepted_tokens} of "
          f"{stats.num_proposed_tokens} proposed tokens accepted")
    print(f"  {text}")


async def main(model: str | None, max_tokens: int) -> None:
    await answer(model, max_tokens, None)
    await answer(model, max_tokens, "ngram")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens))
