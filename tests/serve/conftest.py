"""The real default model's folder for the serve tests; `helpers` runs servers on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gguf.smollm2 import converted_smollm2


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)
