"""Tool calls: what `tools` and `tool_choice` ask of a chat request, and the calls read from its output.

As vLLM serves them:

- `tool_choice` "none": the tools reach the chat template; the output is plain content.
- "required": the output is constrained to a JSON array of calls, each {"name": one of the tools,
  "parameters": that tool's arguments schema} (at most one with `parallel_tool_calls` false); a named
  function (`{"type": "function", "function": {"name": ...}}`): constrained to that function's
  arguments schema. Either way the reply carries `message.tool_calls` and finish_reason "tool_calls"
  (if the output was cut by `max_tokens` it is returned as content with "length": an unfinished
  call cannot be made).
- "auto" (the default when tools are given): the model decides, in its own format, which the server's
  `--tool-call-parser` reads: `hermes` (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
  Qwen2.5/Qwen3 and Hermes models) or `llama3_json` (`{"name": ..., "parameters": {...}}`, calls
  separated by ";", optionally after `<|python_tag|>`). Without a parser "auto" is refused, as vLLM
  refuses it without `--enable-auto-tool-choice`.

Streaming: content streams as it comes until text could start a call; a call is sent as one
`tool_calls` delta (id, name and its whole arguments) once it is complete, which OpenAI's clients
accumulate as they do partial arguments.

Imports only the standard library and this package's modules.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..structured_params import StructuredOutputsParams
from .errors import APIError

EMPTY_OBJECT = {"type": "object", "properties": {}}
"""The arguments schema of a function declared without `parameters` (OpenAI: takes no arguments)."""


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: str
    """JSON text."""
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def as_dict(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        return call if index is None else {"index": index, **call}


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A chat request's tools and what it asked of them, checked."""

    kind: Literal["none", "auto", "required", "named"]
    tools: tuple[dict[str, Any], ...]
    """OpenAI's function definitions, as the template gets them."""
    name: str | None = None
    parallel: bool = True

    @property
    def forced(self) -> bool:
        return self.kind in ("required", "named")

    def constraint(self) -> StructuredOutputsParams:
        """What a forced choice constrains the output to."""
        if self.kind == "named":
            return StructuredOutputsParams(json=self._parameters(self.name))
        calls = [{"type": "object", "properties": {"name": {"type": "string", "enum": [name]},
                                                   "parameters": self._parameters(name)},
                  "required": ["name", "parameters"]} for name in self._names()]
        array: dict[str, Any] = {"type": "array", "items": {"anyOf": calls}, "minItems": 1}
        if not self.parallel:
            array["maxItems"] = 1
        return StructuredOutputsParams(json=array)

    def forced_calls(self, text: str) -> list[Call]:
        """The calls a forced choice's output (complete, so valid JSON) makes."""
        if self.kind == "named":
            assert self.name is not None
            return [Call(self.name, text)]
        return [Call(call["name"], json.dumps(call["parameters"], ensure_ascii=False)) for call in json.loads(text)]

    def _names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]

    def _parameters(self, name: str | None) -> dict[str, Any]:
        tool = next(t for t in self.tools if t["function"]["name"] == name)
        return tool["function"].get("parameters") or EMPTY_OBJECT


def tool_choice(tools: list[dict[str, Any]] | None, choice: str | dict[str, Any] | None, parallel: bool | None,
                parser: str | None) -> ToolChoice | None:
    """The request's `tools` / `tool_choice` / `parallel_tool_calls` (as plain JSON values), checked;
    None when it has no tools."""
    if not tools:
        if choice not in (None, "none"):
            raise APIError(400, "tool_choice needs tools", param="tool_choice")
        return None
    names = [tool["function"]["name"] for tool in tools]
    if len(set(names)) != len(names):
        raise APIError(400, f"tools: function names must be unique, got {names}", param="tools")
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        if name not in names:
            raise APIError(400, f"tool_choice names {name!r}, which is not among the tools {names}", param="tool_choice")
        return ToolChoice("named", tuple(tools), name, parallel is not False)
    kind = choice or "auto"
    if kind == "auto" and parser is None:
        raise APIError(400, 'tool_choice "auto" needs a tool-call parser: start the server with --tool-call-parser '
                       f'({" or ".join(PARSERS)}), or send tool_choice "required", "none" or a named function',
                       param="tool_choice")
    return ToolChoice(kind, tuple(tools), None, parallel is not False)  # type: ignore[arg-type]


class ToolCallParser(Protocol):
    """Reads a model's own tool-call format out of its output, as it streams."""

    def feed(self, text: str) -> tuple[str, list[Call]]:
        """More output -> (content that is surely not part of a call, calls completed by it)."""
        ...

    def finish(self) -> tuple[str, list[Call]]:
        """The output ended: whatever was held back, as content or calls."""
        ...


class HermesParser:
    """`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, any number, content around them."""

    START, END = "<tool_call>", "</tool_call>"

    def __init__(self) -> None:
        self._held = ""
        self._in_call = False

    def feed(self, text: str) -> tuple[str, list[Call]]:
        self._held += text
        content, calls = "", list[Call]()
        while True:
            if self._in_call:
                end = self._held.find(self.END)
                if end < 0:
                    return content, calls
                body, self._held, self._in_call = self._held[:end], self._held[end + len(self.END):], False
                try:
                    calls.append(_call(body, "arguments"))
                except ValueError:  # not a call after all: the text stays content
                    content += self.START + body + self.END
                continue
            start = self._held.find(self.START)
            if start < 0:
                keep = _partial_suffix(self._held, self.START)
                content += self._held[: len(self._held) - keep]
                self._held = self._held[len(self._held) - keep:]
                return content, calls
            content += self._held[:start]
            self._held, self._in_call = self._held[start + len(self.START):], True

    def finish(self) -> tuple[str, list[Call]]:
        held, self._held = self._held, ""
        return (self.START + held if self._in_call else held), []


class Llama3JsonParser:
    """Llama 3's JSON tool calls: the whole output is `{"name": ..., "parameters": {...}}` (calls
    separated by ";", optionally after `<|python_tag|>`); anything else is content."""

    TAG = "<|python_tag|>"

    def __init__(self) -> None:
        self._text = ""
        self._content = True
        """Until the output is known not to be calls, it is held back."""

    def feed(self, text: str) -> tuple[str, list[Call]]:
        self._text += text
        stripped = self._text.lstrip()
        could_be_call = not stripped or stripped.startswith(("{", self.TAG)) or self.TAG.startswith(stripped)
        if self._content and not could_be_call:
            self._content = False
        if self._content:
            return "", []
        out, self._text = self._text, ""
        return out, []

    def finish(self) -> tuple[str, list[Call]]:
        text, self._text = self._text, ""
        if not self._content:
            return text, []
        body = text.strip().removeprefix(self.TAG)
        try:
            return "", [_call(part, "parameters") for part in body.split(";") if part.strip()]
        except ValueError:
            return text, []


PARSERS: dict[str, type[HermesParser] | type[Llama3JsonParser]] = {"hermes": HermesParser,
                                                                     "llama3_json": Llama3JsonParser}


def _call(body: str, arguments_key: str) -> Call:
    """A call from its JSON text; ValueError if it is not one."""
    value = json.loads(body)
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError(f"not a tool call: {body[:80]!r}")
    arguments = value.get(arguments_key, value.get("arguments", value.get("parameters", {})))
    return Call(value["name"], arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False))


def _partial_suffix(text: str, marker: str) -> int:
    """How many characters at the end of `text` could begin `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class ToolReply:
    """One chat request's output read for tool calls: the whole message, or stream deltas."""

    def __init__(self, choice: ToolChoice, parser: str | None) -> None:
        self.choice = choice
        self._parser: ToolCallParser | None = PARSERS[parser]() if choice.kind == "auto" and parser else None
        self._calls = 0
        self._forced_text = ""

    def message(self, text: str, finish_reason: str | None) -> tuple[dict[str, Any], str | None]:
        """The reply's `message` and finish reason for the whole output `text`."""
        content, calls = text, list[Call]()
        if self.choice.forced and finish_reason == "stop":
            content, calls = "", self.choice.forced_calls(text)
        elif self._parser is not None:
            content, calls = self._parser.feed(text)
            rest, more = self._parser.finish()
            content, calls = content + rest, calls + more
        message: dict[str, Any] = {"role": "assistant", "content": content if content or not calls else None}
        if calls:
            message["tool_calls"] = [call.as_dict() for call in calls]
            return message, "tool_calls"
        return message, finish_reason

    def deltas(self, text: str) -> list[dict[str, Any]]:
        """The stream deltas for more output `text`."""
        if self.choice.kind == "named":
            first = [] if self._calls else [self._tool_delta(Call(self.choice.name or "", ""))]  # the name, once
            return first + ([{"tool_calls": [{"index": 0, "function": {"arguments": text}}]}] if text else [])
        if self.choice.kind == "required":
            self._forced_text += text
            return []
        if self._parser is None:
            return [{"content": text}] if text else []
        return self._parsed(*self._parser.feed(text))

    def finish(self, finish_reason: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The deltas held back until the output ended, and the finish reason."""
        if self.choice.kind == "named":
            return [], "tool_calls" if finish_reason == "stop" else finish_reason
        if self.choice.kind == "required":
            if finish_reason != "stop":
                return ([{"content": self._forced_text}] if self._forced_text else []), finish_reason
            return [self._tool_delta(call) for call in self.choice.forced_calls(self._forced_text)], "tool_calls"
        if self._parser is None:
            return [], finish_reason
        deltas = self._parsed(*self._parser.finish())
        return deltas, "tool_calls" if self._calls else finish_reason

    def _parsed(self, content: str, calls: list[Call]) -> list[dict[str, Any]]:
        return ([{"content": content}] if content else []) + [self._tool_delta(call) for call in calls]

    def _tool_delta(self, call: Call) -> dict[str, Any]:
        delta = {"tool_calls": [call.as_dict(self._calls)]}
        self._calls += 1
        return delta


__all__ = ["PARSERS", "Call", "ToolCallParser", "ToolChoice", "ToolReply", "tool_choice"]
