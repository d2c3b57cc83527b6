"""Convert a GGUF file (a `llama`, `qwen2` or `qwen3` architecture: `gguf_file`) into a Hugging Face
checkpoint folder (`sarathi convert`), or write the index folder an engine loads it through.

The index folder (`write_gguf_index`, what `resolve` makes on a GGUF's first use) holds the
configuration and tokenizer files below and `gguf.json` naming the GGUF file(s): no weights. The
loader reads them from the GGUF itself (`checkpoint.GGUFCheckpoint`).

The converted folder is what transformers reads: config.json, generation_config.json,
model.safetensors (dequantized, fp32: see `gguf_config.STORED_DTYPE`), tokenizer.json and
tokenizer_config.json (with the chat template), and `quantized.safetensors` with the file's tensors of
the types the quantized kernels take (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) read from their
blocks (see `gguf_weights.quantized_state_dict`), which the loader gives to the quantized kernels
(`quant`). transformers ignores that extra file. The tokenizer plugin reads either folder the same
way and never sees a GGUF.

Either folder is written next to its destination under a temporary name and renamed into place when
complete, so an interrupted conversion never leaves a folder that looks usable.

Imports gguf, numpy, safetensors, tokenizers (all when called), the standard library, this package
and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from sarathi_sdk import ConfigError

from .gguf_config import generation_config, model_config
from .gguf_file import open_gguf
from .gguf_parts import GGUF_INDEX, gguf_parts
from .gguf_tokenizer import build_tokenizer, tokenizer_config
from .gguf_weights import QUANTIZED_FILE, hf_state_dict, quantized_state_dict


def convert_gguf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write the checkpoint folder of `gguf_path` at `out_dir` (which must not exist, or be empty)."""
    return _write_folder(Path(gguf_path), Path(out_dir), write_checkpoint)


def write_gguf_index(gguf_path: Path, out_dir: Path) -> Path:
    """Write the index folder of the GGUF model whose first (or only) file is `gguf_path` at
    `out_dir`: everything `convert_gguf` writes but the weights, and `gguf.json` naming the files the
    loader reads them from (`checkpoint.GGUFCheckpoint`). About 4 MB for the default model: its
    tokenizer."""
    return _write_folder(gguf_path, out_dir, write_index)


def _write_folder(source: Path, target: Path, write: Callable[[Path, Path], None]) -> Path:
    """`write(source, staging)` into a fresh folder renamed to `target` once complete."""
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
        write(source, staging)
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


def write_index(source: Path, folder: Path) -> None:
    """Write the index files of `source` into the existing folder `folder` (see `write_gguf_index`)."""
    file = open_gguf(source)
    config = model_config(file)  # an architecture or setting we cannot run fails here, before any write
    build_tokenizer(file).save(str(folder / "tokenizer.json"))
    _write_json(folder / "config.json", config)
    _write_json(folder / "generation_config.json", generation_config(file))
    _write_json(folder / "tokenizer_config.json", tokenizer_config(file))
    _write_json(folder / GGUF_INDEX, {"files": [str(p.resolve()) for p in gguf_parts(source)]})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
