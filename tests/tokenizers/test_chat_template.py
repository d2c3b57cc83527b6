"""Chat templates render exactly as transformers renders them; template errors are request errors."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer

from sarathi_sdk import InvalidRequestError
from tests.tokenizers.conftest import make_tokenizer
from tests.tokenizers.spm import LLAMA2_TEMPLATE

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Japan? 日本"},
]
TOJSON_TEMPLATE = "{% for m in messages %}{{ m | tojson }}\n{% endfor %}"


@pytest.fixture(scope="module")
def template_folder(smollm2_folder, tmp_path_factory):
    """SmolLM2's tokenizer.json with another template: a multi-line one written for trim_blocks and
    lstrip_blocks, that uses `bos_token` and `eos_token`."""
    folder = tmp_path_factory.mktemp("templated")
    shutil.copy(smollm2_folder / "tokenizer.json", folder / "tokenizer.json")
    config = json.loads((smollm2_folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(config, chat_template=LLAMA2_TEMPLATE)))
    return folder


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_smollm2_template_renders_as_transformers_does(smollm2_folder, smollm2_tokenizer, add_generation_prompt):
    reference = AutoTokenizer.from_pretrained(smollm2_folder)
    for messages in (CONVERSATION, CONVERSATION[1:2]):
        expected = reference.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
        assert smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt) == expected


def test_whitespace_control_and_special_token_variables_match_transformers(template_folder):
    reference = AutoTokenizer.from_pretrained(template_folder)
    expected = reference.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=False)
    rendered = make_tokenizer(template_folder).apply_chat_template(CONVERSATION)
    assert rendered == expected == (
        "<|im_start|>[INST] What is the capital of France? [/INST]\n Paris. <|im_end|>\n"
        "<|im_start|>[INST] And of Japan? 日本 [/INST]\n"
    )


def test_raise_exception_in_a_template_is_an_invalid_request(template_folder):
    with pytest.raises(InvalidRequestError, match="roles must alternate"):
        make_tokenizer(template_folder).apply_chat_template([{"role": "assistant", "content": "first?"}])


def test_a_model_without_a_template_refuses_chat(sp_folder, tmp_path):
    shutil.copy(sp_folder / "tokenizer.model", tmp_path / "tokenizer.model")
    with pytest.raises(InvalidRequestError, match="no chat template"):
        make_tokenizer(tmp_path).apply_chat_template(CONVERSATION)


def test_tojson_keeps_non_ascii_text(smollm2_folder, tmp_path):
    shutil.copy(smollm2_folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "chat_template.jinja").write_text(TOJSON_TEMPLATE)  # the file newer checkpoints use
    rendered = make_tokenizer(tmp_path).apply_chat_template(CONVERSATION[3:])
    assert rendered == '{"role": "user", "content": "And of Japan? 日本"}\n'
