"""Structured output: a pydantic model in, a validated object of it out.

`StructuredOutputsParams(json=City)` takes the model's JSON schema, and the engine allows only the
tokens that keep the output inside it, so a small model's answer always parses: when it finishes
with "stop" the text is a complete `City`, and `model_validate_json` checks it as any other input.
(An answer cut at `max_tokens` ends with "length", an unfinished object.) The schema holds pydantic's
constraints too: without `le=` on the population, greedy decoding writes "1111..." until
`max_tokens`, since an unbounded integer never has to end.

Run: python examples/structured_output.py [--model PATH] [--max-tokens N]
"""

import argparse
import asyncio

from pydantic import BaseModel, Field

from sarathi_sdk import Engine, SamplingParams, StructuredOutputsParams


class City(BaseModel):
    name: str
    country: str
    population: int = Field(ge=0, le=100_000_000)  # bounds in the schema: the digits end


async def main(model: str | None, max_tokens: int) -> None:
    params = SamplingParams(max_tokens=max_tokens, temperature=0, structured_outputs=StructuredOutputsParams(json=City))
    question = [{"role": "user",
                 "content": "Describe the capital of France as JSON: its name, country and population."}]
    async with Engine(model) as engine:  # no model given: the bundled SmolLM2-135M-Instruct
        text, reason = "", None
        async for out in engine.chat(question, params):  # deltas: the text new since the last output
            text, reason = text + out.text, out.finish_reason
    print(f"text: {text}  [{reason}]")
    if reason == "stop":
        city = City.model_validate_json(text)
        print(f"object: {city!r}")
        print(f"{city.name} is in {city.country} and has {city.population:,} inhabitants.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens))
