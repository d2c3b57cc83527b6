"""Structured outputs through a live engine on a tiny random Llama (a random model samples like a real
one at a high temperature, so every constraint is exercised): each kind, prompts chunked at budgets 7
and 64 with constrained rows beside unconstrained ones, preemption, abort, refusals, the compile cache."""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import pytest

from sarathi_sdk import (
    Engine,
    InvalidRequestError,
    SamplingParams,
    StructuredOutputsParams,
)
from tests.structured.recorder import Recorder

TIMEOUT = 240
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 99},
        "kind": {"enum": ["cat", "dog"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 1, "maxItems": 2},
        "note": {"type": "string", "pattern": "^[a-z]{1,5}$"},
    },
    "required": ["id", "kind", "tags"],
}
GRAMMAR = 'root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]?'
CONSTRAINTS = {
    "json": (StructuredOutputsParams(json=SCHEMA), lambda text: jsonschema.validate(json.loads(text), SCHEMA)),
    "json_object": (StructuredOutputsParams(json_object=True), lambda text: isinstance(json.loads(text), dict) or 1 / 0),
    "regex": (StructuredOutputsParams(regex=r"[A-Z][a-z]{2,6}-\d{2}"),
              lambda text: re.fullmatch(r"[A-Z][a-z]{2,6}-\d{2}", text) or 1 / 0),
    "choice": (StructuredOutputsParams(choice=["red", "green", "blue sky"]),
               lambda text: text in ("red", "green", "blue sky") or 1 / 0),
    "grammar": (StructuredOutputsParams(grammar=GRAMMAR),
                lambda text: re.fullmatch(r"\([1-9][0-9]?(\+[1-9][0-9]?)*\)", text) or 1 / 0),
}
PROMPT = "def main():\n    return json.dumps(value, indent=2)\n" * 3  # 3 chunks at budget 64, many at 7


def engine(folder, recorder=None, **options) -> Engine:
    return Engine(str(folder), dtype="float32", plugins=[recorder] if recorder else [], **options)


@pytest.mark.parametrize("budget", [7, 64])
async def test_every_kind_holds_beside_unconstrained_requests(tiny_folder, budget):
    recorder = Recorder()
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, recorder, token_budget=budget, max_num_seqs=6) as e:
            constrained = [
                e.complete(PROMPT, SamplingParams(max_tokens=48, temperature=1.0, seed=seed, structured_outputs=params))
                for name, (params, _) in CONSTRAINTS.items() for seed in (1, 2)
            ]
            free = [e.complete(PROMPT, SamplingParams(max_tokens=24, temperature=1.0, seed=s)) for s in (3, 4)]
            outputs = await asyncio.gather(*constrained, *free)
    for (name, (_, check)), out in zip([item for item in CONSTRAINTS.items() for _ in (1, 2)], outputs):
        assert out.finish_reason in ("stop", "length"), name
        if out.finish_reason == "stop":
            check(out.text)
    finished = [out for out in outputs[: len(constrained)] if out.finish_reason == "stop"]
    assert len(finished) >= len(constrained) - 2  # at most a couple of JSON objects still open at 48 tokens
    assert recorder.live_matchers() == 0


async def test_unconstrained_requests_are_token_identical_beside_constrained_ones(tiny_folder):
    params = SamplingParams(max_tokens=24, temperature=0)
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, token_budget=7) as e:
            alone = await asyncio.gather(*(e.complete(PROMPT[i:], params) for i in (0, 5)))
        async with engine(tiny_folder, token_budget=7) as e:
            mixed = await asyncio.gather(
                *(e.complete(PROMPT[i:], params) for i in (0, 5)),
                *(e.complete(PROMPT[i:], SamplingParams(max_tokens=24, temperature=0, structured_outputs=c))
                  for i, (c, _) in zip((1, 2, 3), CONSTRAINTS.values())),
            )
    assert [o.token_ids for o in mixed[:2]] == [o.token_ids for o in alone]


async def test_preempted_requests_resume_their_structure(tiny_folder):
    recorder = Recorder()
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, recorder, token_budget=64, block_size=16, num_kv_blocks=14, max_num_seqs=4) as e:
            params, check = CONSTRAINTS["json"]
            outputs = await asyncio.gather(*(
                e.complete(PROMPT, SamplingParams(max_tokens=60, temperature=1.0, seed=s, structured_outputs=params))
                for s in range(4)))
            assert e.stats().num_preemptions > 0
    for out in outputs:
        if out.finish_reason == "stop":
            check(out.text)
    assert recorder.live_matchers() == 0


async def test_abort_mid_structure_leaves_no_matcher_and_frees_the_cache(tiny_folder):
    recorder = Recorder()
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, recorder, token_budget=64) as e:
            total = e.stats().kv_blocks_free
            stream = e.generate(PROMPT, SamplingParams(max_tokens=200, temperature=1.0, seed=5,
                                                       structured_outputs=CONSTRAINTS["json"][0]))
            async for out in stream:
                if out.token_ids:
                    break
            await stream.aclose()
            await e.complete(PROMPT, SamplingParams(max_tokens=2))  # a step runs after the abort
            assert e.stats().kv_blocks_free == total
            assert recorder.live_matchers() == 0


async def test_max_tokens_inside_the_structure_finishes_with_length(tiny_folder):
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, token_budget=64) as e:
            out = await e.complete(PROMPT, SamplingParams(max_tokens=3, temperature=0,
                                                          structured_outputs=CONSTRAINTS["json"][0]))
    assert out.finish_reason == "length" and out.text.startswith("{")


@pytest.mark.parametrize("params, field", [
    (StructuredOutputsParams(json={"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}), "structured_outputs.json"),
    (StructuredOutputsParams(regex="a(b"), "structured_outputs.regex"),
    (StructuredOutputsParams(grammar="root ::= undefined_rule"), "structured_outputs.grammar"),
])
async def test_constraints_that_do_not_compile_are_refused_before_admission(tiny_folder, params, field):
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, token_budget=64) as e:
            with pytest.raises(InvalidRequestError, match=field):
                await e.complete(PROMPT, SamplingParams(max_tokens=4, structured_outputs=params))
            assert e.stats().num_waiting == 0 and e.stats().num_running == 0
            assert len((await e.complete(PROMPT, SamplingParams(max_tokens=4, temperature=0))).token_ids) == 4


async def test_a_repeated_constraint_is_compiled_once(tiny_folder):
    recorder = Recorder()
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, recorder, token_budget=64) as e:
            for _ in range(3):
                await e.complete(PROMPT, SamplingParams(max_tokens=4, structured_outputs=StructuredOutputsParams(
                    json=json.dumps(SCHEMA))))
    assert (recorder.backend.compiles, recorder.backend.cache_hits) == (1, 2)


async def test_without_a_structured_output_backend_the_request_is_refused(tiny_folder):
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, block_plugins=["sarathi_structured"]) as e:
            with pytest.raises(InvalidRequestError, match="structured-output backend"):
                await e.complete(PROMPT, SamplingParams(structured_outputs=CONSTRAINTS["regex"][0]))


async def test_requests_arriving_together_with_a_new_schema_compile_it_once(tiny_folder):
    recorder = Recorder()
    params = SamplingParams(max_tokens=2, structured_outputs=StructuredOutputsParams(json={
        "type": "object", "properties": {"k": {"type": "integer"}}}))
    async with asyncio.timeout(TIMEOUT):
        async with engine(tiny_folder, recorder, token_budget=64) as e:
            await asyncio.gather(*(e.complete(PROMPT, params) for _ in range(12)))
    assert (recorder.backend.compiles, recorder.backend.cache_hits) == (1, 11)
