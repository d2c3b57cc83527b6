"""A tiny random Llama with the test session's sentencepiece vocabulary (byte fallback, so every string
has tokens), optionally with a chat template: a random model samples like a real one at a high
temperature, so every constraint and every tool format gets exercised."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sentencepiece

from tests.models.helpers import save_tiny
from tests.tokenizers.spm import train_sentencepiece

TOOL_TEMPLATE = """{%- if tools %}<|im_start|>system
# Tools
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "assistant" and message.tool_calls %}<|im_start|>assistant
{% for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""
"""Qwen2.5's template in its parts that concern tools: the definitions in a system turn, an assistant's
calls as Hermes `<tool_call>` blocks with their arguments written as JSON once, results as
`<tool_response>`."""


def tiny_folder(root: Path, chat_template: str | None = None) -> Path:
    sp_model = train_sentencepiece(root / "spm")
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    folder = save_tiny(root / "model", "LlamaForCausalLM", vocab_size=vocab, bos_token_id=1, eos_token_id=2)
    shutil.copy(sp_model, folder / "tokenizer.model")
    if chat_template is not None:
        config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "chat_template": chat_template}
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
