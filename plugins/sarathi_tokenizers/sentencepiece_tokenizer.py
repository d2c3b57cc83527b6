"""A tokenizer from a sentencepiece `tokenizer.model`, run by the sentencepiece library itself.

sentencepiece never reads control tokens (`<s>`, `</s>`) out of text, yet chat templates write them
into the prompt, and transformers' Llama tokenizer turns them into their ids. So the text is first cut
at every special token (the model's control pieces and those tokenizer_config.json marks special) and
only the pieces between are handed to sentencepiece. A BOS is added unless tokenizer_config.json says
`add_bos_token: false`, the default of transformers' `LlamaTokenizer`.

Imports sentencepiece, the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import sentencepiece

from sarathi_sdk import ConfigError

from .base import BaseTokenizer
from .checkpoint import TokenizerSettings
from .token_bytes import sentencepiece_bytes


class SentencePieceTokenizer(BaseTokenizer):
    def __init__(self, path: Path, settings: TokenizerSettings) -> None:
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load {path}: {exc}") from exc
        control = {self._sp.id_to_piece(i): i for i in range(self._sp.get_piece_size()) if self._sp.is_control(i)}
        named = [*settings.special_tokens.values(), *settings.added_special_tokens]
        self._special = control | {text: i for text in named if (i := self._piece_id(text)) is not None}
        self._special_ids = frozenset(self._special.values())
        pattern = "|".join(re.escape(text) for text in sorted(self._special, key=len, reverse=True) if text)
        self._splitter = re.compile(f"({pattern})") if pattern else None
        super().__init__(settings, self._piece_id, default_add_bos=self._sp.bos_id() >= 0)

    def _piece_id(self, text: str) -> int | None:
        """The id of a whole piece; sentencepiece answers unknown pieces with the unk id."""
        piece_id = self._sp.piece_to_id(text)
        return None if piece_id == self._sp.unk_id() and text != self._sp.id_to_piece(piece_id) else piece_id

    def _encode_text(self, text: str, add_special_tokens: bool) -> list[int]:
        if self._splitter is None:
            return self._sp.encode(text)
        ids: list[int] = []
        for index, part in enumerate(self._splitter.split(text)):
            if index % 2:
                ids.append(self._special[part])
            elif part:
                ids.extend(self._sp.encode(part))
        return ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        if skip_special_tokens:
            return self._sp.decode([i for i in token_ids if i not in self._special_ids])
        # sentencepiece drops control pieces; write them out between the decoded runs around them.
        text, run = [], []
        for token_id in token_ids:
            if token_id in self._special_ids:
                text.append(self._sp.decode(run) + self._sp.id_to_piece(token_id))
                run = []
            else:
                run.append(token_id)
        return "".join(text) + self._sp.decode(run)

    def token_bytes(self) -> list[bytes]:
        """Every piece's bytes (see `token_bytes`), by id; control, unknown and special pieces b""."""
        sp = self._sp
        return [b"" if i in self._special_ids or sp.is_control(i) or sp.is_unknown(i) else sentencepiece_bytes(sp.id_to_piece(i))
                for i in range(sp.get_piece_size())]
