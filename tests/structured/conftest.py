"""Models for structured-output tests: a tiny random Llama with the test session's sentencepiece
vocabulary (byte fallback, so every string has tokens), and the default model's converted folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sentencepiece

from tests.gguf.smollm2 import converted_smollm2
from tests.models.helpers import save_tiny
from tests.tokenizers.spm import train_sentencepiece


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sp_model = train_sentencepiece(tmp_path_factory.mktemp("structured-spm"))
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    folder = save_tiny(tmp_path_factory.mktemp("structured-tiny"), "LlamaForCausalLM", vocab_size=vocab,
                       bos_token_id=1, eos_token_id=2)
    shutil.copy(sp_model, folder / "tokenizer.model")
    return folder


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)
