"""A tokenizer from a `tokenizer.json` file, run by the Rust `tokenizers` library.

`tokenizer.json` is the complete pipeline (normalizer, pre-tokenizer, model, post-processor, decoder,
added tokens), so encoding and decoding are single calls; what the file cannot say (BOS convention,
end-of-sequence ids, chat template) comes from the checkpoint's JSON files through `BaseTokenizer`.
Decoding skips special tokens and applies no `clean_up_tokenization_spaces`, so that text -> ids ->
text gives the text back exactly.

Imports tokenizers, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import tokenizers

from sarathi_sdk import ConfigError

from .base import BaseTokenizer
from .checkpoint import TokenizerSettings
from .token_bytes import byte_level_bytes, sentencepiece_bytes


class JsonTokenizer(BaseTokenizer):
    def __init__(self, path: Path, settings: TokenizerSettings) -> None:
        try:
            self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises its own untyped exception
            raise ConfigError(f"cannot load {path}: {exc}") from exc
        # A tokenizer.json may carry training-time truncation and padding; prompts must pass whole.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        super().__init__(settings, self._tokenizer.token_to_id)

    def _encode_text(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)

    def token_bytes(self) -> list[bytes]:
        """Every token's bytes (see `token_bytes`), by id; special tokens b"". Byte-level when the
        file's decoder is (GPT-2 style), else sentencepiece's "▁" and byte tokens."""
        decoder = json.loads(self._tokenizer.to_str()).get("decoder") or {}
        kinds = {decoder.get("type")} | {step.get("type") for step in decoder.get("decoders") or ()}
        read = byte_level_bytes if "ByteLevel" in kinds else sentencepiece_bytes
        special = {i for i, token in self._tokenizer.get_added_tokens_decoder().items() if token.special}
        pieces = (self._tokenizer.id_to_token(i) for i in range(self._tokenizer.get_vocab_size(with_added_tokens=True)))
        return [b"" if i in special or piece is None else read(piece) for i, piece in enumerate(pieces)]
