"""Round trip: a random transformers Llama, written as llama.cpp writes GGUF files, converts back to
the same model; every quantization type dequantizes exactly as gguf's reference does."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import sentencepiece
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

from sarathi_models.gguf import convert_gguf
from sarathi_sdk import EngineConfig
from sarathi_tokenizers import sarathi_make_tokenizer
from tests.gguf.tiny_gguf import CHAT_TEMPLATE, random_llama, write_llama_gguf

Q = gguf.GGMLQuantizationType
QUANT_TYPES = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.F16, Q.BF16]
TEXTS = ["def main():\n    return 0", "  two  spaces", "emoji 😀 and 中文", "digits 12345"]


@pytest.fixture(scope="module")
def tiny(sp_model, tmp_path_factory):
    """(reference model, converted folder) of an all-F32 GGUF."""
    model = random_llama(sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size())
    folder = tmp_path_factory.mktemp("tiny")
    write_llama_gguf(folder / "tiny.gguf", model, sp_model)
    return model, convert_gguf(folder / "tiny.gguf", folder / "converted")


def test_converted_model_computes_what_the_original_does(tiny):
    reference, folder = tiny
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(converted.state_dict()[name], tensor), name
    ids = torch.randint(3, reference.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, reference(ids).logits)


def test_untied_output_is_kept_and_tied_embeddings_are_declared(tiny, sp_model, tmp_path):
    _, folder = tiny
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is False
    tied = random_llama(1000, tie=True)
    write_llama_gguf(tmp_path / "tied.gguf", tied, sp_model)
    converted = convert_gguf(tmp_path / "tied.gguf", tmp_path / "out")
    assert json.loads((converted / "config.json").read_text())["tie_word_embeddings"] is True
    assert "lm_head.weight" not in load_file(converted / "model.safetensors")


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
def test_quantized_tensors_dequantize_exactly(qtype, sp_model, tmp_path):
    model = random_llama(1000)
    names = {"blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj.weight",
             "blk.0.attn_k.weight": "model.layers.0.self_attn.k_proj.weight",
             "blk.1.ffn_down.weight": "model.layers.1.mlp.down_proj.weight"}
    write_llama_gguf(tmp_path / "q.gguf", model, sp_model, quant=dict.fromkeys(names, qtype))
    weights = load_file(convert_gguf(tmp_path / "q.gguf", tmp_path / "out") / "model.safetensors")
    for hf_name in names.values():
        original = model.state_dict()[hf_name].numpy()
        # Quantization works along rows, so it commutes with llama.cpp's row permutation.
        expected = gguf.quants.dequantize(gguf.quants.quantize(original, qtype), qtype)
        assert weights[hf_name].dtype == np.float32
        np.testing.assert_array_equal(weights[hf_name], expected, err_msg=hf_name)


def test_sentencepiece_vocabulary_encodes_as_sentencepiece_does(tiny, sp_model):
    _, folder = tiny
    ours = sarathi_make_tokenizer(EngineConfig(model=str(folder)))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    for text in TEXTS:
        assert ours.encode(text) == [sp.bos_id(), *sp.encode(text)], text
        assert ours.decode(ours.encode(text)) == text
    specials = ours.encode("<s>hi</s>", add_special_tokens=False)
    assert specials[0] == sp.bos_id() and specials[-1] == sp.eos_id() and len(specials) > 2


def test_tokenizer_config_carries_specials_and_template(tiny):
    _, folder = tiny
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == ("<s>", "</s>", "<unk>")
    assert config["add_bos_token"] is True and config["chat_template"] == CHAT_TEMPLATE
    assert json.loads((folder / "generation_config.json").read_text()) == {"bos_token_id": 1, "eos_token_id": 2}
