"""StructuredOutputsParams: the one constraint a request's output must follow, validated before admission.

vLLM's names (`SamplingParams(structured_outputs=StructuredOutputsParams(json=...))`), so code moves
over unchanged. Exactly one kind per request:

- `json`: a JSON schema, as a dict, a JSON string, or a pydantic model class (its
  `model_json_schema()`); kept as JSON text, its properties in the order given (the order the model
  writes them in), which is the compiled-grammar cache's key;
- `regex`: the whole output matches this regular expression;
- `choice`: the output is one of these strings;
- `grammar`: an EBNF grammar (the GBNF dialect llama.cpp and xgrammar read), its start rule `root`;
- `json_object`: any JSON object (OpenAI's `{"type": "json_object"}`).

Only the form is checked here; whether a schema, regex or grammar compiles is the structured-output
backend's to say (`StructuredOutputBackend.compile`), also before admission.

Imports only the standard library and `errors`.
"""

from __future__ import annotations

import json as json_module
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequestError

KINDS = ("json", "regex", "choice", "grammar", "json_object")


@dataclass(frozen=True, slots=True)
class StructuredOutputsParams:
    """One constraint on a request's output; see the module docstring."""

    json: Any = None
    """A JSON schema: dict, JSON text or pydantic model class; JSON text once constructed."""
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    grammar: str | None = None
    json_object: bool = False

    def __post_init__(self) -> None:
        given = [kind for kind in KINDS if getattr(self, kind) not in (None, False)]
        if len(given) != 1:
            raise InvalidRequestError(
                f"structured_outputs takes exactly one of {', '.join(KINDS)}, got {given or 'none'}")
        if self.json is not None:
            object.__setattr__(self, "json", _schema_text(self.json))
        if self.regex is not None and not (isinstance(self.regex, str) and self.regex):
            raise InvalidRequestError(f"structured_outputs.regex must be a non-empty string, got {self.regex!r}")
        if self.grammar is not None and not (isinstance(self.grammar, str) and self.grammar.strip()):
            raise InvalidRequestError(f"structured_outputs.grammar must be a non-empty string, got {self.grammar!r}")
        if self.choice is not None:
            object.__setattr__(self, "choice", _choices(self.choice))
        if not isinstance(self.json_object, bool):
            raise InvalidRequestError(f"structured_outputs.json_object must be True or False, got {self.json_object!r}")

    @property
    def kind(self) -> str:
        """Which constraint this is: one of `KINDS`."""
        return next(kind for kind in KINDS if getattr(self, kind) not in (None, False))

    @property
    def key(self) -> tuple[str, str]:
        """(kind, its text): equal for equal constraints, the compiled-grammar cache's key."""
        value = getattr(self, self.kind)
        if self.kind == "choice":
            return self.kind, json_module.dumps(value)
        return self.kind, "" if value is True else str(value)


def _schema_text(schema: Any) -> str:
    """A schema given as a dict, JSON text or pydantic model class -> JSON text (compact, keys in order)."""
    to_schema = getattr(schema, "model_json_schema", None)
    if isinstance(schema, type) and callable(to_schema):
        schema = to_schema()
    elif isinstance(schema, str):
        try:
            schema = json_module.loads(schema)
        except ValueError as exc:
            raise InvalidRequestError(f"structured_outputs.json is not valid JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise InvalidRequestError("structured_outputs.json must be a JSON schema (a dict, JSON text or a pydantic "
                                  f"model class), got {type(schema).__name__}")
    try:
        return json_module.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"structured_outputs.json cannot be written as JSON: {exc}") from None


def _choices(values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidRequestError(f"structured_outputs.choice must be a list of strings, got the string {values!r}")
    try:
        choices = tuple(values)
    except TypeError:
        raise InvalidRequestError(f"structured_outputs.choice must be a list of strings, got {values!r}") from None
    if not choices or not all(isinstance(c, str) and c for c in choices):
        raise InvalidRequestError(f"structured_outputs.choice must be a non-empty list of non-empty strings, got {values!r}")
    return choices
