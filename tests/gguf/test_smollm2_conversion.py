"""SmolLM2's GGUF file as the engine reads it (its index folder, the tensors read from the file) and as
`sarathi convert` writes it: both are the model transformers reads from the GGUF file itself."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sarathi_sdk import EngineConfig
from sarathi_tokenizers import sarathi_make_tokenizer
from tests.gguf.smollm2 import PARIS_QUESTION, smollm2_gguf

TEXTS = [
    PARIS_QUESTION,
    "Hello world! How are you doing today?",
    "  leading spaces\n\nnew lines\tand tabs  ",
    "naïve café, Straße, 中文字符, emoji 😀🎉",
    "numbers 12345 + 678 = 13023, and a 1 b 22",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "don't you'll I'M they've",
]


@pytest.fixture(scope="module")
def converted_model(tmp_path_factory):
    from sarathi_models.gguf import convert_gguf

    folder = convert_gguf(smollm2_gguf(), tmp_path_factory.mktemp("smollm2") / "converted")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def test_config_carries_the_gguf_hyper_parameters(smollm2_folder):
    config = json.loads((smollm2_folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    expected = {
        "num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
        "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True, "rope_theta": 100000.0,
        "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": 2,
    }
    assert {key: config[key] for key in expected} == expected
    assert config["rms_norm_eps"] == pytest.approx(1e-5)


def test_the_weights_read_from_the_file_equal_transformers_gguf_loader(smollm2_folder, reference_gguf_model):
    from sarathi_models.checkpoint import open_checkpoint
    from sarathi_models.model_config import read_hf_config

    reference = reference_gguf_model.state_dict()
    ours = dict(open_checkpoint(smollm2_folder, read_hf_config(smollm2_folder)).tensors(skip=()))
    assert ours.keys() == reference.keys() - {"lm_head.weight"}  # tied: transformers lists the embedding twice
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference[name]), name


def test_weights_equal_transformers_gguf_loader(converted_model, reference_gguf_model):
    ours, reference = converted_model.state_dict(), reference_gguf_model.state_dict()
    assert ours.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(ours[name], tensor), name


def test_greedy_tokens_equal_transformers_gguf_loader(converted_model, reference_gguf_model, reference_gguf_tokenizer):
    prompt = reference_gguf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a short poem about the sea."}], add_generation_prompt=True, tokenize=False
    )
    ids = reference_gguf_tokenizer(prompt, return_tensors="pt").input_ids
    ours = converted_model.generate(ids, max_new_tokens=24, do_sample=False, min_new_tokens=24)
    reference = reference_gguf_model.generate(ids, max_new_tokens=24, do_sample=False, min_new_tokens=24)
    assert ours.shape[1] == ids.shape[1] + 24
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_ids_equal_transformers_gguf_tokenizer(smollm2_folder, reference_gguf_tokenizer, text):
    ours = sarathi_make_tokenizer(EngineConfig(model=str(smollm2_folder)))
    assert ours.encode(text) == reference_gguf_tokenizer(text).input_ids
    assert ours.decode(ours.encode(text), skip_special_tokens=False) == text


def test_chat_template_is_the_gguf_one(smollm2_folder, reference_gguf_tokenizer):
    config = json.loads((smollm2_folder / "tokenizer_config.json").read_text())
    assert config["chat_template"] == reference_gguf_tokenizer.chat_template
    assert (config["bos_token"], config["eos_token"], config["add_bos_token"]) == ("<|im_start|>", "<|im_end|>", False)
