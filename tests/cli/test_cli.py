"""`sarathi convert`, `sarathi plugins` and the error contract, through the installed command."""

from __future__ import annotations

import json

from tests.cli.conftest import run_sarathi
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf


def test_convert_writes_a_checkpoint_folder(sp_model, tmp_path):
    write_llama_gguf(tmp_path / "tiny.gguf", random_llama(1000), sp_model)
    result = run_sarathi("convert", str(tmp_path / "tiny.gguf"), str(tmp_path / "out"), cache_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "out")
    names = {path.name for path in (tmp_path / "out").iterdir()}
    assert names == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_an_sdk_error_is_one_line_on_stderr_and_exit_status_2(tmp_path):
    result = run_sarathi("convert", str(tmp_path / "missing.gguf"), str(tmp_path / "out"), cache_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"sarathi: error: no GGUF file at {tmp_path / 'missing.gguf'}"]
    assert result.stdout == ""


def test_a_missing_model_fails_before_loading_anything(tmp_path):
    result = run_sarathi("generate", "hi", "--model", str(tmp_path / "nowhere"), cache_dir=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "does not exist" in result.stderr


def test_plugins_lists_plugins_and_registries(tmp_path):
    result = run_sarathi("plugins", cache_dir=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    sections = _sections(result.stdout)
    assert {"sarathi_tokenizers", "sarathi_models", "sarathi_scheduling", "sarathi_paged_kv"} <= sections["plugins"]
    assert {"sarathi", "vllm", "orca", "static"} <= sections["schedulers"]
    assert "LlamaForCausalLM" in sections["model architectures"]
    assert "torch" in sections["attention backends"]
    assert {"ngram", "draft"} <= sections["proposers"]


def _sections(text: str) -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    current: set[str] = set()
    for line in text.splitlines():
        if line.startswith("  "):
            current.add(line.strip())
        else:
            current = sections.setdefault(line.rstrip(":"), set())
    return sections
