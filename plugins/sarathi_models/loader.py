"""Build a model from a checkpoint folder: architecture lookup, materialisation, safetensors weights.

Only `*.safetensors` files are read (one file, or shards listed in `model.safetensors.index.json`):
never pickle, never `torch.load`. The model is built on the meta device, materialised empty on the
target device in the target dtype, then every parameter is filled from the checkpoint, through the
owning module's `weight_loader` when it has one (fused projections). A parameter the checkpoint does
not fill is a ConfigError, so a random weight never serves silently.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from sarathi_sdk import ConfigError

from .gguf_weights import QUANTIZED_FILE
from .layers import default_weight_loader
from .model_config import architecture_of, read_hf_config
from .protocols import CausalLM


def load_model(
    model_dir: str | Path,
    architectures: Mapping[str, Callable[[dict[str, Any]], CausalLM]],
    device: torch.device,
    dtype: torch.dtype,
) -> CausalLM:
    """The checkpoint in `model_dir` as a ready model on `device` in `dtype`."""
    hf_config = read_hf_config(model_dir)
    arch = architecture_of(hf_config)
    factory = architectures.get(arch)
    if factory is None:
        raise ConfigError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(architectures))}")
    with torch.device("meta"):
        model = factory(hf_config)
    model.to(dtype=dtype).to_empty(device=device)  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    load_weights(model, safetensors_files(model_dir))
    return model


def safetensors_files(model_dir: str | Path) -> list[Path]:
    """The checkpoint's weight files: the shards of the index if there is one, else every file."""
    folder = Path(model_dir)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [folder / name for name in shards]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"shards listed in {index} are missing: {', '.join(missing)}")
        return files
    files = sorted(f for f in folder.glob("*.safetensors") if f.name != QUANTIZED_FILE)
    if not files:
        raise ConfigError(f"no *.safetensors weights in {folder} (pickled checkpoints are not loaded)")
    return files


def load_weights(model: CausalLM, files: list[Path]) -> None:
    """Fill every parameter of `model` from the safetensors `files`."""
    params = dict(model.named_parameters())  # type: ignore[attr-defined]
    filled: set[tuple[str, str | None]] = set()
    for name, tensor in _tensors(files):
        if any(name.endswith(suffix) for suffix in model.ignored_weights):
            continue
        target, shard_id = _target(name, model.packed_modules)
        param = params.get(target)
        if param is None:
            raise ConfigError(f"checkpoint tensor {name!r} matches no parameter of {type(model).__name__}")
        owner = model.get_submodule(target.rpartition(".")[0])  # type: ignore[attr-defined]
        loader = getattr(owner, "weight_loader", default_weight_loader)
        try:
            loader(param, tensor, shard_id)
        except ConfigError as exc:
            raise ConfigError(f"checkpoint tensor {name!r}: {exc}") from None
        filled.add((target, shard_id))
    expected: set[tuple[str, str | None]] = set()
    for p in params:
        shards = getattr(model.get_submodule(p.rpartition(".")[0]), "shard_offsets", None)  # type: ignore[attr-defined]
        expected |= {(p, s) for s in shards} if shards else {(p, None)}
    missing = sorted(f"{p}[{s}]" if s else p for p, s in expected - filled)
    if missing:
        more = " ..." if len(missing) > 8 else ""
        raise ConfigError(f"checkpoint lacks weights for: {', '.join(missing[:8])}{more}")


def _target(name: str, packed: Mapping[str, tuple[str, str]]) -> tuple[str, str | None]:
    """Checkpoint name -> (parameter name, shard id) through the model's fused-module map."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in packed:
            fused, shard_id = packed[part]
            return ".".join(parts[:i] + [fused] + parts[i + 1 :]), shard_id
    return name, None


@contextlib.contextmanager
def open_safetensors(path: Path) -> Iterator[Any]:
    """`safe_open` whose failures (a corrupted or absurd header, a truncated body, an unreadable file)
    are a ConfigError naming the file, raised while opening or while reading any tensor."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            yield handle
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{path} is not a readable safetensors file: {exc}") from exc


def _tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """Every (name, tensor) of the files, on the CPU, with a progress bar over tensors."""
    total = 0
    for f in files:
        with open_safetensors(f) as handle:
            total += len(handle.keys())
    with tqdm(total=total, desc="Loading weights", unit="tensor", leave=False) as bar:
        for f in files:
            with open_safetensors(f) as handle:
                for name in handle.keys():
                    yield name, handle.get_tensor(name)
                    bar.update(1)
