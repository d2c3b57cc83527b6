"""Request bodies of the OpenAI API, and their mapping onto `SamplingParams`.

The models are strict (no "5" for 5, no 1.0 for 1) and forbid unknown fields, so a field this server
does not implement (`tools`, `response_format`, `logit_bias`, ...) is a 400 naming it, never silently
dropped. Fields that exist but only in one value (`n`, `best_of`, `echo`, `suffix`) accept that value
only. vLLM's extra sampling fields are accepted: `top_k`, `min_p`, `repetition_penalty`,
`stop_token_ids`, `ignore_eos`. `user` is accepted and unused, as in OpenAI's API.

`SamplingParams` itself checks every value; its messages start with the field's name, which
`param_for` maps back to the request field, so an error names the field the client sent.

Imports pydantic and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ..errors import InvalidRequestError
from ..sampling import SamplingParams
from .errors import APIError

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


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    """"developer" is OpenAI's newer name for "system", and is sent to the template as "system"."""
    content: str | list[TextPart]

    def as_template_message(self) -> dict[str, str]:
        content = self.content if isinstance(self.content, str) else "\n".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": content}


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
        }
        try:
            return SamplingParams(**{name: value for name, value in values.items() if value is not None})
        except InvalidRequestError as exc:
            raise APIError(400, str(exc), param=self.param_for(str(exc))) from None

    def param_for(self, message: str) -> str | None:
        """The request field an SDK error message is about: SamplingParams and admission messages
        start with the name of what they refuse."""
        first = message.split(" ", 1)[0].rstrip(":,")
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


def field_names() -> frozenset[str]:
    """Every field of every request model, for naming the field of a validation error."""
    models = (ChatCompletionRequest, CompletionRequest, ChatMessage, TextPart, StreamOptions)
    return frozenset(name for model in models for name in model.model_fields)
