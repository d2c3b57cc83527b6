"""Convert a GGUF file (a `llama` or `qwen2` architecture: `gguf_file`) into a Hugging Face checkpoint folder.

The folder is what every other part of sarathi-sdk (and transformers) reads: config.json,
generation_config.json, model.safetensors (dequantized, fp32: see `gguf_config.STORED_DTYPE`),
tokenizer.json and tokenizer_config.json (with the chat template), and `quantized.safetensors` with
the file's tensors of the types the quantized kernels take (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)
read from their blocks (see `gguf_weights.quantized_state_dict`), which the loader gives to the
quantized kernels (`quant`). transformers ignores that extra file. Converting once and loading the
folder afterwards keeps GGUF knowledge in these gguf_* modules only: the model loader and the
tokenizer plugin never see a GGUF.

The folder is written next to its destination under a temporary name and renamed into place when
complete, so an interrupted conversion never leaves a folder that looks usable.

Imports gguf, numpy, safetensors, tokenizers (all when called), the standard library, this package
and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from sarathi_sdk import ConfigError

from .gguf_config import generation_config, model_config
from .gguf_file import open_gguf
from .gguf_tokenizer import build_tokenizer, tokenizer_config
from .gguf_weights import QUANTIZED_FILE, hf_state_dict, quantized_state_dict


def convert_gguf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write the checkpoint folder of `gguf_path` at `out_dir` (which must not exist, or be empty)."""
    source, target = Path(gguf_path), Path(out_dir)
    if not source.is_file():
        raise ConfigError(f"no GGUF file at {source}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not an empty folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc}") from exc
    try:
        write_checkpoint(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(f"cannot write {target}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def write_checkpoint(source: Path, folder: Path) -> None:
    """Write the converted files of `source` into the existing folder `folder`."""
    from safetensors.numpy import save_file

    file = open_gguf(source)
    config = model_config(file)
    tokenizer = build_tokenizer(file)  # before the weights: a tokenizer we cannot rebuild fails fast
    tensors = hf_state_dict(file, config["num_attention_heads"], config["num_key_value_heads"])
    weights = dict(tqdm(tensors, total=len(file.tensors), desc="Converting GGUF", unit="tensor", leave=False))
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del weights
    quantized = dict(quantized_state_dict(file, config["num_attention_heads"], config["num_key_value_heads"]))
    if quantized:
        save_file(quantized, str(folder / QUANTIZED_FILE), metadata={"format": "sarathi-quantized"})
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_json(folder / "config.json", config)
    _write_json(folder / "generation_config.json", generation_config(file))
    _write_json(folder / "tokenizer_config.json", tokenizer_config(file))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
