"""Structured outputs on the default model (SmolLM2-135M-Instruct), through its chat template: a pydantic
model's schema gives an object that validates, a choice picks one of its strings, a JSON object and a
regex hold, greedy and sampled, with chunked prompts beside an unconstrained request."""

from __future__ import annotations

import asyncio
import json
import re

import pydantic

from sarathi_sdk import Engine, SamplingParams, StructuredOutputsParams


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=40)
    country: str = pydantic.Field(max_length=40)
    population: int = pydantic.Field(ge=0, le=100_000_000)  # unbounded, greedy digits never end


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_the_default_model_answers_in_each_form(smollm2_folder):
    async def run(engine, text, temperature, seed, **constraint):
        params = SamplingParams(max_tokens=96, temperature=temperature, seed=seed,
                                structured_outputs=StructuredOutputsParams(**constraint) if constraint else None)
        outputs = [o async for o in engine.chat(ask(text), params)]
        return "".join(o.text for o in outputs), outputs[-1].finish_reason

    async with asyncio.timeout(240):
        async with Engine(str(smollm2_folder), token_budget=64) as engine:
            results = await asyncio.gather(
                run(engine, "Give me a JSON object describing the city of Paris with name, country and population.", 0,
                    None, json=City),
                run(engine, "Describe the city of Rome as a JSON object.", 1.0, 7, json=City),
                run(engine, "Is the sky blue? Answer yes or no.", 0, None, choice=["yes", "no"]),
                run(engine, "Give me a JSON object with your name.", 0, None, json_object=True),
                run(engine, "Write a date.", 1.0, 5, regex=r"20[0-9]{2}-[01][0-9]-[0-3][0-9]"),
                run(engine, "What is the capital of France?", 0, None),
                run(engine, "Add two numbers.", 1.0, 9, grammar='root ::= num " + " num " = " num\nnum ::= [1-9] [0-9]?'),
            )
    (paris, reason), (rome, rome_reason), (answer, _), (anything, anything_reason), (date, date_reason), (free, _), \
        (sum_text, sum_reason) = results
    assert reason == "stop" and City.model_validate_json(paris).name
    assert rome_reason == "length" or City.model_validate_json(rome)
    assert answer in ("yes", "no")
    assert anything_reason == "stop" and isinstance(json.loads(anything), dict)
    assert date_reason == "stop" and re.fullmatch(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]", date)
    assert free == "The capital of France is Paris."
    assert sum_reason == "stop" and re.fullmatch(r"[1-9][0-9]? \+ [1-9][0-9]? = [1-9][0-9]?", sum_text)
