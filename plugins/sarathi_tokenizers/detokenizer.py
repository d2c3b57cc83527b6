"""Incremental detokenization: the text each new batch of tokens completes, never half a character.

A token is not a unit of text: byte-level BPE and sentencepiece byte-fallback split one character
over several tokens, and sentencepiece drops the space before the first word of a decode. So text is
not the concatenation of per-token strings. Following vLLM and HF's `TextStreamer`, each step decodes
a short window of recent tokens twice, with and without the new ones, and emits the difference; the
window starts at the tokens of the last emission, so its first token is decoded the same way both
times and the leading-space and split-character effects cancel out. Decoding stays O(window) per step.

While the window's text ends in U+FFFD the bytes of a character are still arriving: nothing is emitted
and the window grows until the character is complete. A stream that ends inside a character (the
model stopped mid-way) therefore never shows that last broken character.

Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT_CHARACTER = "\ufffd"
PROMPT_CONTEXT_TOKENS = 6
"""Prompt tokens decoded with the first new tokens, so the first delta carries its leading space."""


class WindowDetokenizer:
    """Turns token-id deltas into text deltas whose concatenation is the decode of all generated
    tokens (decoded after the prompt, so a leading space is kept)."""

    def __init__(self, decode: Callable[[Sequence[int]], str], prompt_token_ids: Sequence[int]) -> None:
        self._decode = decode
        self._ids = list(prompt_token_ids)
        self._read_offset = len(self._ids)
        self._prefix_offset = max(self._read_offset - PROMPT_CONTEXT_TOKENS, 0)
        self._prefix_text = decode(self._ids[self._prefix_offset : self._read_offset])

    def add(self, token_ids: Sequence[int]) -> str:
        """Text the new tokens complete; holds back bytes of an unfinished UTF-8 character."""
        self._ids.extend(token_ids)
        text = self._decode(self._ids[self._prefix_offset :])
        if len(text) <= len(self._prefix_text) or text.endswith(REPLACEMENT_CHARACTER):
            return ""
        delta = text[len(self._prefix_text) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        self._prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        return delta
