"""What the converter refuses, and that a refused or failed conversion leaves nothing behind."""

from __future__ import annotations

import pytest

from sarathi_models.gguf import convert_gguf
from sarathi_sdk import ConfigError
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf


def test_a_non_llama_gguf_is_a_config_error(sp_model, tmp_path):
    write_llama_gguf(tmp_path / "gpt2.gguf", random_llama(1000), sp_model, architecture="gpt2")
    with pytest.raises(ConfigError, match="architectures can be converted: llama, qwen2, qwen3"):
        convert_gguf(tmp_path / "gpt2.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_conversion_leaves_no_folder_behind(sp_model, tmp_path):
    write_llama_gguf(tmp_path / "odd.gguf", random_llama(1000), sp_model, byte_level_pre="mystery")
    with pytest.raises(ConfigError, match="pre-tokenizer 'mystery'"):
        convert_gguf(tmp_path / "odd.gguf", tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["odd.gguf"]


def test_an_existing_folder_is_never_overwritten(sp_model, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    write_llama_gguf(tmp_path / "m.gguf", random_llama(1000), sp_model)
    with pytest.raises(ConfigError, match="already exists"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no GGUF file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")


@pytest.mark.parametrize("content", [b"not a gguf file", b"GGUF\x03\x00\x00\x00truncated"])
def test_a_file_that_is_not_a_readable_gguf_is_a_config_error(tmp_path, content):
    (tmp_path / "bad.gguf").write_bytes(content)
    with pytest.raises(ConfigError, match="cannot read GGUF file"):
        convert_gguf(tmp_path / "bad.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()
