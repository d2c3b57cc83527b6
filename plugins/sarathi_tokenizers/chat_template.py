"""Chat templates: the Jinja2 program in a checkpoint that turns messages into one prompt string.

Rendered the way transformers renders them, because templates are written against that behaviour:
a sandboxed environment (a template is code from the checkpoint, not from us), `trim_blocks` and
`lstrip_blocks`, the `loopcontrols` extension, a `tojson` filter that keeps non-ASCII text, and the
globals `raise_exception` and `strftime_now`. The special tokens (`bos_token`, `eos_token`, ...) are
template variables, since many templates write `{{ bos_token }}` themselves.

Imports jinja2, the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sarathi_sdk import ConfigError, InvalidRequestError


class ChatTemplate:
    """One compiled template; `render` is called per chat request."""

    def __init__(self, source: str, special_tokens: Mapping[str, str]) -> None:
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        environment.filters["tojson"] = _tojson
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"the model's chat template does not compile: {exc}") from exc
        self._special_tokens = dict(special_tokens)

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
               tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The prompt for `messages`, with `tools` (OpenAI's function definitions) in the template's
        context as transformers passes them (a template without tool support ignores them); a
        template that rejects them (say, roles that do not alternate) is the caller's error, an
        `InvalidRequestError`."""
        context = {} if tools is None else {"tools": [dict(tool) for tool in tools]}
        try:
            return self._template.render(
                messages=[_with_text(message) for message in messages],
                add_generation_prompt=add_generation_prompt,
                **context,
                **self._special_tokens,
            )
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidRequestError(f"the model's chat template rejected the messages: {exc}") from exc


def _with_text(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message with "" for a content of None (an assistant turn that only called tools): templates
    that know tool calls test `message.content` for truth, the same for both, and those that do not
    (SmolLM2's writes `'...' + message['content']`) can still render the turn."""
    message = dict(message)
    if message.get("content") is None:
        message["content"] = ""
    return message


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    """Jinja's own `tojson` escapes HTML and forces ASCII; chat prompts want the text as it is."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.datetime.now().strftime(format)
