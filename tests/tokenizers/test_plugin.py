"""The bundled tokenizer plugin picks the right file of a checkpoint folder."""

from __future__ import annotations

import shutil

from sarathi_sdk import EngineConfig, PluginManager, Tokenizer
from sarathi_tokenizers.json_tokenizer import JsonTokenizer
from sarathi_tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer


def make(folder):
    config = EngineConfig(model=str(folder))
    return PluginManager(config).hook.sarathi_make_tokenizer(config=config)


def test_the_hook_builds_a_tokenizer_that_meets_the_protocol(sp_folder, smollm2_folder):
    assert isinstance(make(sp_folder), SentencePieceTokenizer)
    assert isinstance(make(smollm2_folder), JsonTokenizer)
    assert isinstance(make(smollm2_folder), Tokenizer)


def test_tokenizer_json_wins_over_tokenizer_model(sp_folder, smollm2_folder, tmp_path):
    shutil.copy(sp_folder / "tokenizer.model", tmp_path / "tokenizer.model")
    shutil.copy(smollm2_folder / "tokenizer.json", tmp_path / "tokenizer.json")
    assert isinstance(make(tmp_path), JsonTokenizer)


def test_a_folder_without_tokenizer_files_has_no_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert make(tmp_path) is None
