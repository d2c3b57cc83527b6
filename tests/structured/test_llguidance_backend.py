"""The contract holds for a second grammar library: examples/llguidance_backend.py's plugin serves every
constraint kind through a live engine on the default model (byte-level BPE, which the example is
for), sampled at temperature 1, and refuses what llguidance cannot read."""

from __future__ import annotations

import asyncio
import json
import re
import runpy
from pathlib import Path

import pytest

from sarathi_sdk import Engine, InvalidRequestError, SamplingParams, StructuredOutputsParams

EXAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "llguidance_backend.py"))
KINDS = [
    (StructuredOutputsParams(json={"type": "object", "properties": {"n": {"type": "integer", "maximum": 99}},
                                   "required": ["n"], "additionalProperties": False}),
     lambda text: 0 <= json.loads(text)["n"] <= 99 or 1 / 0),
    (StructuredOutputsParams(regex=r"[a-c]{2}-\d"), lambda text: re.fullmatch(r"[a-c]{2}-\d", text) or 1 / 0),
    (StructuredOutputsParams(choice=["left", "right"]), lambda text: text in ("left", "right") or 1 / 0),
    (StructuredOutputsParams(grammar='root ::= "x" [0-9] [0-9]'), lambda text: re.fullmatch(r"x\d\d", text) or 1 / 0),
]


async def test_every_kind_through_the_llguidance_plugin(smollm2_folder):
    async with asyncio.timeout(120):
        async with Engine(str(smollm2_folder), plugins=[EXAMPLE["LLGuidancePlugin"]()], token_budget=64) as engine:
            outputs = await asyncio.gather(*(
                engine.complete("def main():", SamplingParams(max_tokens=40, temperature=1.0, seed=s,
                                                              structured_outputs=params))
                for params, _ in KINDS for s in (1, 2)))
            with pytest.raises(InvalidRequestError, match="structured_outputs.regex"):
                await engine.complete("x", SamplingParams(structured_outputs=StructuredOutputsParams(regex="a(b")))
    for (_, check), out in zip([kind for kind in KINDS for _ in (1, 2)], outputs):
        assert out.finish_reason == "stop"
        check(out.text)
