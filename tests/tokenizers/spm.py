"""A sentencepiece model trained in the test session from local text: the Python stdlib's sources.

BPE with byte fallback, so characters it never saw (emoji, most CJK) become several byte tokens, the
case incremental detokenization must get right; identity normalization and kept whitespace, so text
round-trips exactly. Training takes well under a second.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import sentencepiece

STDLIB_SOURCES = ("textwrap.py", "json/decoder.py", "json/encoder.py", "argparse.py", "string.py")
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% endif %}\n"
    "{% for message in messages %}\n"
    "    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "    {% endif %}\n"
    "    {% if message['role'] == 'user' %}\n"
    "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}\n"
    "    {% else %}\n"
    "{{ ' ' + message['content'] + ' ' + eos_token }}\n"
    "    {% endif %}\n"
    "{% endfor %}\n"
)
"""Llama 2's template shape, written over several lines: rendering it right needs trim_blocks and
lstrip_blocks, `raise_exception` and the special-token variables."""


def train_sentencepiece(folder: Path) -> Path:
    """Train `folder/tokenizer.model` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines = [
        line
        for name in STDLIB_SOURCES
        for line in (stdlib / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(folder / "tokenizer"),
        model_type="bpe",
        vocab_size=1000,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        minloglevel=2,
    )
    return folder / "tokenizer.model"


def write_llama2_tokenizer_config(folder: Path, **overrides: object) -> None:
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "chat_template": LLAMA2_TEMPLATE}
    config.update(overrides)
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
