"""GGUF fixtures: the converted SmolLM2 folder and transformers' own reading of the same GGUF file,
the reference our converter is held to; and a sentencepiece model for synthetic Llama GGUFs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.gguf.smollm2 import converted_smollm2, smollm2_gguf
from tests.tokenizers.spm import train_sentencepiece


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)


@pytest.fixture(scope="session")
def reference_gguf_model():
    """transformers' GGUF loader (dequantizes and un-permutes on its own), in fp32."""
    from transformers import AutoModelForCausalLM

    path = smollm2_gguf()
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def reference_gguf_tokenizer():
    from transformers import AutoTokenizer

    path = smollm2_gguf()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_sentencepiece(tmp_path_factory.mktemp("gguf-sentencepiece"))
