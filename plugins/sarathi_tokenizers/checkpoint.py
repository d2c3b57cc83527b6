"""What a checkpoint folder says about its tokenizer, outside the vocabulary file itself.

Hugging Face spreads this over three JSON files: `tokenizer_config.json` (special tokens, `add_bos_token`,
the chat template), `config.json` and `generation_config.json` (end-of-sequence ids, which differ from
the tokenizer's own `eos_token` in chat models such as Llama 3). Newer checkpoints keep the chat
template in a `chat_template.jinja` file of its own. Reading them in one place lets both tokenizer
kinds (tokenizer.json and sentencepiece) agree on these conventions.

Imports only the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarathi_sdk import ConfigError

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True, slots=True)
class TokenizerSettings:
    """The conventions a tokenizer follows, as the checkpoint states them (None: not stated)."""

    special_tokens: dict[str, str]
    """`bos_token`, `eos_token`, ... by name, as strings; absent when the checkpoint names none."""
    add_bos_token: bool | None
    chat_template: str | None
    eos_token_ids: tuple[int, ...]
    """End-of-sequence ids from config.json and generation_config.json."""
    added_special_tokens: tuple[str, ...]
    """Tokens that tokenizer_config.json marks special (`added_tokens_decoder`)."""


def read_settings(folder: Path) -> TokenizerSettings:
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    special_tokens = {
        name: text for name in SPECIAL_TOKEN_NAMES if (text := _token_text(tokenizer_config.get(name))) is not None
    }
    eos_ids: list[int] = []
    for name in ("config.json", "generation_config.json"):
        eos_ids.extend(_as_ids(_read_json(folder / name).get("eos_token_id")))
    added = tokenizer_config.get("added_tokens_decoder") or {}
    added_special = tuple(
        text for entry in added.values() if entry.get("special") and (text := _token_text(entry)) is not None
    )
    add_bos = tokenizer_config.get("add_bos_token")
    return TokenizerSettings(
        special_tokens=special_tokens,
        add_bos_token=bool(add_bos) if add_bos is not None else None,
        chat_template=_chat_template(folder, tokenizer_config),
        eos_token_ids=tuple(dict.fromkeys(eos_ids)),
        added_special_tokens=added_special,
    )


def _chat_template(folder: Path, tokenizer_config: dict[str, Any]) -> str | None:
    """The default template: tokenizer_config's string, the entry named "default" of its list form,
    or the `chat_template.jinja` file that transformers >= 4.47 writes instead."""
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):
        named = {entry.get("name"): entry.get("template") for entry in template if isinstance(entry, dict)}
        template = named.get("default")
    if template is None and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    return template if isinstance(template, str) and template else None


def _token_text(value: object) -> str | None:
    """A special token is written as a string or as a serialized AddedToken `{"content": ...}`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _as_ids(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}
