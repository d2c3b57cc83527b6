"""Request bodies of the OpenAI API, and their mapping onto `SamplingParams`.

The models are strict (no "5" for 5, no 1.0 for 1) and forbid unknown fields, so a field this server
does not implement (`logit_bias`, `functions`, ...) is a 400 naming it, never silently dropped.
Structured output comes as OpenAI's `response_format` (`json_object`, `json_schema`) or vLLM's
`structured_outputs` extra field (`StructuredOutputsParams`' fields); chat also takes `tools`,
`tool_choice` and `parallel_tool_calls` (see `tool_calls`), and tool results as `role: "tool"` messages. Fields that exist but only in one value (`n`, `best_of`, `echo`, `suffix`) accept that value
only. vLLM's extra sampling fields are accepted: `top_k`, `min_p`, `repetition_penalty`,
`stop_token_ids`, `ignore_eos`. `user` is accepted and unused, as in OpenAI's API.

`SamplingParams` itself checks every value; its messages start with the field's name, which
`param_for` maps back to the request field, so an error names the field the client sent.

Imports pydantic and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InvalidRequestError
from ..sampling import SamplingParams
from ..structured_params import StructuredOutputsParams
from .errors import APIError
from .tool_calls import ToolChoice, tool_choice

COMPLETION_DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for `/v1/completions`; chat's default is the server's `default_max_tokens`."""
SAMPLING_FIELDS = tuple(SamplingParams.__dataclass_fields__)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(Strict):
    include_usage: bool = False


class TextPart(Strict):
    type: Literal["text"]
    text: str


class CalledFunction(Strict):
    name: str
    arguments: str
    """JSON text, as the model wrote it."""


class ToolCall(Strict):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    """"developer" is OpenAI's newer name for "system", and is sent to the template as "system"."""
    content: str | list[TextPart] | None = None
    """None only for an assistant message that called tools."""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    """A tool result's: the call it answers."""
    name: str | None = None

    def as_template_message(self) -> dict[str, Any]:
        """The message as chat templates read it (transformers' convention): a call's arguments as a
        dict, not JSON text, so that a template's `tojson` writes them once."""
        content = self.content if self.content is None or isinstance(self.content, str) else "\n".join(
            p.text for p in self.content)
        message: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": content}
        if self.tool_calls:
            message["tool_calls"] = [{"id": call.id, "type": "function", "function": {
                "name": call.function.name, "arguments": _arguments(call.function.arguments)}}
                for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            message["name"] = self.name
        return message


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise APIError(400, f"messages: a tool call's arguments are not JSON: {text[:80]!r}", param="messages") from None


class JsonSchemaFormat(Strict):
    name: str
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class FunctionDefinition(Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: FunctionName


class CommonRequest(Strict):
    """The fields both endpoints share."""

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: dict[str, Any] | None = None
    """vLLM's extra field: `{"json": schema}`, `{"regex": ...}`, `{"choice": [...]}`, `{"grammar": ...}`
    or `{"json_object": true}`."""

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n not in (None, 1):
            raise ValueError(f"only n=1 is supported, got {n}")
        return n

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling_params(self, default_max_tokens: int) -> SamplingParams:
        """The request as SamplingParams; a 400 naming the field when a value is out of range."""
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed when stream is true", param="stream_options")
        values: dict[str, Any] = {
            "max_tokens": self._max_tokens(default_max_tokens),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "seed": self.seed,
            "stop": self.stop,
            "stop_token_ids": None if self.stop_token_ids is None else tuple(self.stop_token_ids),
            "ignore_eos": self.ignore_eos,
            "logprobs": self._logprobs(),
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "repetition_penalty": self.repetition_penalty,
            "structured_outputs": self.constraint(),
        }
        try:
            return SamplingParams(**{name: value for name, value in values.items() if value is not None})
        except InvalidRequestError as exc:
            raise APIError(400, str(exc), param=self.param_for(str(exc))) from None

    def constraint(self) -> StructuredOutputsParams | None:
        """What the output must follow: `response_format` or `structured_outputs` (one of them)."""
        given = [name for name in ("response_format", "structured_outputs") if getattr(self, name) is not None
                 and not (name == "response_format" and self.response_format.type == "text")]  # type: ignore[union-attr]
        if len(given) > 1:
            raise APIError(400, "response_format and structured_outputs both constrain the output; give one",
                           param="structured_outputs")
        if not given:
            return None
        try:
            if self.structured_outputs is not None:
                return StructuredOutputsParams(**self.structured_outputs)
            return _response_format_constraint(self.response_format)  # type: ignore[arg-type]
        except (InvalidRequestError, TypeError) as exc:
            raise APIError(400, str(exc), param=given[0]) from None

    def param_for(self, message: str) -> str | None:
        """The request field an SDK error message is about: SamplingParams and admission messages
        start with the name of what they refuse."""
        first = message.split(" ", 1)[0].rstrip(":,")
        if first.startswith("structured_outputs"):
            return "structured_outputs" if self.structured_outputs is not None else self.constraint_field
        if first in ("prompt", "token", "the", "message"):
            return self.prompt_field
        if first == "stop":
            return "stop"
        if first == "max_tokens":
            return self.max_tokens_field
        if first == "logprobs":
            return self.logprobs_field
        return first if first in SAMPLING_FIELDS else None

    prompt_field: ClassVar[str] = "prompt"
    logprobs_field: ClassVar[str] = "logprobs"
    constraint_field: ClassVar[str] = "response_format"
    """The field a constraint that came from elsewhere than `structured_outputs` was given in."""

    @property
    def max_tokens_field(self) -> str:
        return "max_tokens"

    def _max_tokens(self, default: int) -> int:
        return default if self.max_tokens is None else self.max_tokens

    def _logprobs(self) -> int | None:
        return None


class ChatCompletionRequest(CommonRequest):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    def checked_tools(self, parser: str | None) -> ToolChoice | None:
        """The request's tools and tool choice, checked against the server's tool-call `parser`."""
        tools = None if self.tools is None else [tool.model_dump(exclude_none=True) for tool in self.tools]
        choice = self.tool_choice.model_dump() if isinstance(self.tool_choice, NamedToolChoice) else self.tool_choice
        return tool_choice(tools, choice, self.parallel_tool_calls, parser)

    def chat_params(self, default_max_tokens: int, tools: ToolChoice | None) -> SamplingParams:
        """`sampling_params`, constrained to the tools' arguments when the tool choice forces a call."""
        params = self.sampling_params(default_max_tokens)
        if tools is None or not tools.forced:
            return params
        if params.structured_outputs is not None:
            raise APIError(400, f"tool_choice {self.tool_choice!r} constrains the output to tool calls; it cannot "
                           "be combined with response_format or structured_outputs", param="tool_choice")
        try:
            constraint = tools.constraint()
        except InvalidRequestError as exc:
            raise APIError(400, str(exc), param="tools") from None
        return dataclasses.replace(params, structured_outputs=constraint)

    @property
    def constraint_field(self) -> str:  # type: ignore[override]
        """"tools" when the tool choice forces a call (its constraint is the tools' schemas)."""
        forced = self.tool_choice == "required" or isinstance(self.tool_choice, NamedToolChoice)
        return "tools" if self.tools and forced else "response_format"

    prompt_field: ClassVar[str] = "messages"
    logprobs_field: ClassVar[str] = "top_logprobs"

    @property
    def max_tokens_field(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    def template_messages(self) -> list[dict[str, str]]:
        return [message.as_template_message() for message in self.messages]

    def _max_tokens(self, default: int) -> int:
        given = {v for v in (self.max_tokens, self.max_completion_tokens) if v is not None}
        if len(given) > 1:
            raise APIError(400, "max_tokens and max_completion_tokens disagree; give one of them",
                           param="max_completion_tokens")
        return given.pop() if given else default

    def _logprobs(self) -> int | None:
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs set to true", param="top_logprobs")
        if not self.logprobs:
            return None
        return 0 if self.top_logprobs is None else self.top_logprobs


class CompletionRequest(CommonRequest):
    prompt: str | list[int] | list[str] | list[list[int]]
    """One prompt: text or token ids, alone or as a list of one (a batch of several is refused)."""
    logprobs: int | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, echo: bool | None) -> bool | None:
        if echo:
            raise ValueError("echo is not supported")
        return echo

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix: str | None) -> str | None:
        if suffix is not None:
            raise ValueError("suffix is not supported")
        return suffix

    @field_validator("best_of")
    @classmethod
    def _one_best(cls, best_of: int | None) -> int | None:
        if best_of not in (None, 1):
            raise ValueError(f"only best_of=1 is supported, got {best_of}")
        return best_of

    def engine_prompt(self) -> str | list[int]:
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        ids = [t for t in prompt if isinstance(t, int)]
        if len(ids) == len(prompt):  # token ids
            return ids
        if len(prompt) != 1:
            raise APIError(400, f"prompt: a batch of {len(prompt)} prompts is not supported; send one prompt",
                           param="prompt")
        only = prompt[0]  # text or token ids (a lone int was token ids above)
        return [only] if isinstance(only, int) else only

    def _logprobs(self) -> int | None:
        return self.logprobs


def _response_format_constraint(response_format: ResponseFormat) -> StructuredOutputsParams:
    if response_format.type == "json_object":
        return StructuredOutputsParams(json_object=True)
    schema = None if response_format.json_schema is None else response_format.json_schema.json_schema
    if schema is None:
        raise InvalidRequestError("response_format: json_schema needs a json_schema with a schema")
    return StructuredOutputsParams(json=schema)


def field_names() -> frozenset[str]:
    """Every field of every request model, for naming the field of a validation error."""
    models = (ChatCompletionRequest, CompletionRequest, ChatMessage, TextPart, StreamOptions, ResponseFormat,
              JsonSchemaFormat, Tool, FunctionDefinition, NamedToolChoice, ToolCall, CalledFunction)
    return frozenset(name for model in models for name in model.model_fields)
