"""What every bundled tokenizer shares: special-token conventions, streaming, chat templates.

The two kinds (tokenizer.json, sentencepiece) differ only in how they encode and decode; end of
sequence ids, the BOS convention, the incremental detokenizer and the chat template are the same
logic over `encode` / `decode`, so they live here once.

Imports only the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sarathi_sdk import InvalidRequestError

from .chat_template import ChatTemplate
from .checkpoint import TokenizerSettings
from .detokenizer import WindowDetokenizer


class BaseTokenizer:
    """Implements the `Tokenizer` protocol given a subclass's `_encode_text` and `decode`; the
    subclass sets up its vocabulary before calling this constructor."""

    def __init__(
        self,
        settings: TokenizerSettings,
        token_to_id: Callable[[str], int | None],
        default_add_bos: bool | None = None,
    ) -> None:
        bos = settings.special_tokens.get("bos_token")
        self._bos_id = token_to_id(bos) if bos is not None else None
        self._add_bos = settings.add_bos_token if settings.add_bos_token is not None else default_add_bos
        self._file_adds_bos = self._bos_id is not None and self._encode_text("", True)[:1] == [self._bos_id]
        eos_ids = set(settings.eos_token_ids)
        eos = settings.special_tokens.get("eos_token")
        if eos is not None and (eos_id := token_to_id(eos)) is not None:
            eos_ids.add(eos_id)
        self._eos_ids = frozenset(eos_ids)
        template = settings.chat_template
        self._chat_template = ChatTemplate(template, settings.special_tokens) if template else None

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Ids that end generation: config.json's and generation_config.json's `eos_token_id`
        together with the tokenizer's `eos_token`, as vLLM does."""
        return self._eos_ids

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self._encode_text(text, add_special_tokens)
        return self._apply_bos_convention(ids) if add_special_tokens else ids

    def _encode_text(self, text: str, add_special_tokens: bool) -> list[int]:
        raise NotImplementedError

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        raise NotImplementedError

    def detokenizer(self, prompt_token_ids: Sequence[int]) -> WindowDetokenizer:
        return WindowDetokenizer(self.decode, prompt_token_ids)

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt string; encode it with `add_special_tokens=False`, as transformers does, since
        a template writes the BOS token itself when the model wants one. `tools` reach the template."""
        if self._chat_template is None:
            raise InvalidRequestError("this model has no chat template; send a plain prompt instead")
        return self._chat_template.render(messages, add_generation_prompt, tools)

    def _apply_bos_convention(self, ids: list[int]) -> list[int]:
        """`add_bos_token` in tokenizer_config.json overrides what the vocabulary file's own
        post-processor does, as transformers' Llama tokenizers do; unstated, the file decides. Only a
        BOS the post-processor added is ever removed, never one the text spelled out."""
        wanted, bos = self._add_bos, self._bos_id
        if wanted is None or bos is None or wanted == self._file_adds_bos:
            return ids
        return [bos, *ids] if wanted else ids[1:]
