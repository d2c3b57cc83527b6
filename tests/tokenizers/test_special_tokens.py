"""BOS, EOS and special tokens follow the checkpoint's conventions, as transformers reads them."""

from __future__ import annotations

import json
import shutil

from tests.tokenizers.conftest import make_tokenizer
from tests.tokenizers.spm import write_llama2_tokenizer_config

BOS, EOS = 1, 2


def test_sentencepiece_adds_bos_by_default_and_only_with_special_tokens(sp_tokenizer):
    assert sp_tokenizer.encode("hi")[0] == BOS
    assert sp_tokenizer.encode("hi", add_special_tokens=False)[0] != BOS
    assert sp_tokenizer.encode("hi")[1:] == sp_tokenizer.encode("hi", add_special_tokens=False)


def test_add_bos_token_false_in_tokenizer_config_is_respected(sp_folder, tmp_path):
    shutil.copy(sp_folder / "tokenizer.model", tmp_path / "tokenizer.model")
    write_llama2_tokenizer_config(tmp_path, add_bos_token=False)
    tokenizer = make_tokenizer(tmp_path)
    assert tokenizer.encode("hi") == tokenizer.encode("hi", add_special_tokens=False)


def test_special_token_text_in_a_prompt_becomes_its_id(sp_tokenizer):
    ids = sp_tokenizer.encode("<s>[INST] hi [/INST]</s>", add_special_tokens=False)
    assert ids[0] == BOS and ids[-1] == EOS
    assert BOS not in ids[1:-1] and EOS not in ids[1:-1]


def test_decode_skips_special_tokens_unless_asked(sp_tokenizer, smollm2_tokenizer):
    ids = sp_tokenizer.encode("hi there") + [EOS]
    assert sp_tokenizer.decode(ids) == "hi there"
    assert sp_tokenizer.decode(ids, skip_special_tokens=False) == "<s>hi there</s>"
    chat = "<|im_start|>user\nhi<|im_end|>\n"
    ids = smollm2_tokenizer.encode(chat, add_special_tokens=False)
    assert smollm2_tokenizer.decode(ids) == "user\nhi\n"
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == chat


def test_eos_ids_join_config_generation_config_and_tokenizer_config(sp_folder, tmp_path):
    shutil.copy(sp_folder / "tokenizer.model", tmp_path / "tokenizer.model")
    write_llama2_tokenizer_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": [7, 8]}))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 9}))
    assert make_tokenizer(tmp_path).eos_token_ids == frozenset({EOS, 7, 8, 9})


def test_smollm2_ends_a_turn_with_im_end(smollm2_tokenizer):
    assert smollm2_tokenizer.eos_token_ids == frozenset({smollm2_tokenizer.encode("<|im_end|>")[0]})
