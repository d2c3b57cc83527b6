"""A second structured-output backend, on llguidance, as a plugin object: the engine's contract is
three methods, so swapping the grammar library is one class.

`Engine(plugins=[LLGuidancePlugin()])` wins over the bundled xgrammar plugin (which is `trylast`).
llguidance, the second backend vLLM offers, compiles JSON schemas, regexes and Lark grammars
lazily: there is no compile step to cache, a constraint is checked when its matcher is made, and
the bitmask it fills has xgrammar's layout, so the engine's sampler applies it unchanged.
`choice` becomes a regex alternation and `grammar` is read as GBNF through `gbnf_to_lark`. Needs
`pip install llguidance`.

For byte-level BPE vocabularies (SmolLM2, Llama 3, Qwen). With a sentencepiece vocabulary whose
`encode` adds a leading space ("x" -> "▁x"), llguidance, which learns the vocabulary through that
function, allowed " {" as a JSON output's first token and then refused it when it came (2026-12-07).
The bundled xgrammar plugin reads only the tokens' bytes and has no such case.

Run: python examples/llguidance_backend.py [--model PATH]
"""

import argparse
import asyncio
import json
import re
from typing import Any

import llguidance
import llguidance.gbnf_to_lark
import llguidance.numpy
import numpy as np
from pydantic import BaseModel, Field

from sarathi_sdk import Engine, InvalidRequestError, SamplingParams, StructuredOutputsParams, hookimpl


COMPACT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
"""JSON as the bundled plugin writes it: free whitespace lets a small model sampling at temperature 1
write newlines until `max_tokens`."""


class LLGuidanceMatcher:
    """One request's `llguidance.LLMatcher`, in the engine's `GrammarMatcher` protocol."""

    def __init__(self, matcher: Any) -> None:
        self._matcher = matcher

    def fill_bitmask(self, bitmask: np.ndarray, row: int) -> None:
        llguidance.numpy.fill_next_token_bitmask(self._matcher, bitmask, row)

    def accept(self, token_id: int) -> bool:
        return bool(self._matcher.consume_token(token_id))

    @property
    def is_terminated(self) -> bool:
        return bool(self._matcher.is_stopped())


class LLGuidanceBackend:
    """The engine's `StructuredOutputBackend` on llguidance, for one tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        vocab = tokenizer.token_bytes()
        eos = sorted(tokenizer.eos_token_ids)

        class Vocabulary:  # what llguidance.TokenizerWrapper reads
            tokens = vocab
            eos_token_id = eos[0]
            bos_token_id = None
            special_token_ids = [i for i, token in enumerate(vocab) if token == b""]

            def __call__(self, text: str) -> list[int]:
                return tokenizer.encode(text, add_special_tokens=False)

        self._tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Vocabulary()))

    def compile(self, params: StructuredOutputsParams) -> str:
        """The constraint as llguidance's grammar text, checked now so a bad one is refused before
        admission."""
        if params.json is not None or params.json_object:
            schema = params.json if params.json is not None else {"type": "object"}
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=COMPACT)
        elif params.regex is not None:
            grammar = llguidance.LLMatcher.grammar_from_regex(params.regex)
        elif params.choice is not None:
            grammar = llguidance.LLMatcher.grammar_from_regex("|".join(re.escape(c) for c in params.choice))
        else:
            grammar = llguidance.LLMatcher.grammar_from_lark(llguidance.gbnf_to_lark.gbnf_to_lark(params.grammar))
        message = llguidance.LLMatcher.validate_grammar(grammar, self._tokenizer)  # "" when valid
        if message:
            raise InvalidRequestError(f"structured_outputs.{params.kind} does not compile: {message}")
        return grammar

    def matcher(self, compiled: str) -> LLGuidanceMatcher:
        return LLGuidanceMatcher(llguidance.LLMatcher(self._tokenizer, compiled))

    def allocate_bitmask(self, rows: int) -> np.ndarray:
        return llguidance.numpy.allocate_token_bitmask(rows, self._tokenizer.vocab_size)


class LLGuidancePlugin:
    @hookimpl
    def sarathi_make_structured_output_backend(self, config, tokenizer):
        return None if tokenizer is None else LLGuidanceBackend(tokenizer)


class Pet(BaseModel):
    name: str = Field(max_length=20)
    species: str = Field(pattern="^(cat|dog|fish)$")
    age: int = Field(ge=0, le=30)


async def main(model: str | None) -> None:
    params = SamplingParams(max_tokens=64, temperature=0, structured_outputs=StructuredOutputsParams(json=Pet))
    question = [{"role": "user", "content": "Describe a pet as JSON: name, species and age."}]
    async with Engine(model, plugins=[LLGuidancePlugin()]) as engine:
        text = "".join([out.text async for out in engine.chat(question, params)])
        pet = Pet.model_validate_json(text)
        print(f"llguidance: {pet!r}")
        choice = StructuredOutputsParams(choice=["yes", "no"])
        answer = await engine.complete("Is water wet? Answer:", SamplingParams(max_tokens=4, structured_outputs=choice))
        print(f"choice: {json.dumps(answer.text)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    asyncio.run(main(parser.parse_args().model))
