"""Tokenizers under test: a sentencepiece model trained here, and the converted SmolLM2 tokenizer.json.

Both are built through the plugin's hook, as the engine builds them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sarathi_sdk import EngineConfig, Tokenizer
from sarathi_tokenizers import sarathi_make_tokenizer
from tests.gguf.smollm2 import converted_smollm2
from tests.tokenizers.spm import train_sentencepiece, write_llama2_tokenizer_config


def make_tokenizer(folder: Path) -> Tokenizer:
    tokenizer = sarathi_make_tokenizer(EngineConfig(model=str(folder)))
    assert tokenizer is not None
    return tokenizer


@pytest.fixture(scope="session")
def sp_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sentencepiece")
    train_sentencepiece(folder)
    write_llama2_tokenizer_config(folder)
    return folder


@pytest.fixture(scope="session")
def sp_tokenizer(sp_folder: Path) -> Tokenizer:
    return make_tokenizer(sp_folder)


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_folder: Path) -> Tokenizer:
    return make_tokenizer(smollm2_folder)
