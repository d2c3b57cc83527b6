"""Models for structured-output tests: a tiny random Llama (`tiny`), and the default model's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gguf.smollm2 import converted_smollm2
from tests.structured.tiny import tiny_folder as make_tiny_folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_folder(tmp_path_factory.mktemp("structured-tiny"))


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)
