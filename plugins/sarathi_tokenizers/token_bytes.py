"""Each token's bytes as the model writes them: what a grammar engine (structured outputs) needs to
know which tokens can continue a string.

A vocabulary stores its tokens in an encoding of its own:

- byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM2) maps every byte to a printable character
  (`BYTE_OF_CHAR` inverts GPT-2's `bytes_to_unicode`);
- sentencepiece, and tokenizer.json files made from it, write a space as "▁" and keep bytes no piece
  covers as byte tokens "<0xAB>".

Special and control tokens are b"": they are never text, and a grammar never allows them (a grammar
engine takes the end-of-sequence ids apart).

Imports only the standard library.
"""

from __future__ import annotations

import re

SPACE_MARK = "\u2581"
BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_of_char() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: printable Latin-1 bytes stand for themselves, the other 68
    bytes for the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


BYTE_OF_CHAR = _byte_of_char()


def byte_level_bytes(token: str) -> bytes:
    """A byte-level BPE token's bytes; a character outside the byte alphabet (an added token's text)
    stands for its UTF-8 bytes."""
    if all(c in BYTE_OF_CHAR for c in token):
        return bytes(BYTE_OF_CHAR[c] for c in token)
    return token.encode("utf-8")


def sentencepiece_bytes(piece: str) -> bytes:
    """A sentencepiece piece's bytes: a byte token is its byte, "▁" is a space."""
    match = BYTE_TOKEN.fullmatch(piece)
    if match is not None:
        return bytes([int(match.group(1), 16)])
    return piece.replace(SPACE_MARK, " ").encode("utf-8")
