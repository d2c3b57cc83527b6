"""Build a model from a checkpoint folder: architecture lookup, materialisation, weights.

The weights come from `checkpoint`: safetensors files (never pickle, never `torch.load`) or the GGUF
file an index folder names. The model is built on the meta device; the modules whose weights the
checkpoint stores quantized get that form and no dense weight at all (`quantize_model.attach_stored`),
so memory never holds both; the rest is materialised empty on the target device in the target dtype,
then every parameter is filled from the checkpoint, through the owning module's `weight_loader` when it
has one (fused projections). A parameter the checkpoint does not fill is a ConfigError, so a random
weight never serves silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from sarathi_sdk import ConfigError

from .checkpoint import open_checkpoint
from .layers import default_weight_loader
from .model_config import architecture_of, read_hf_config
from .protocols import CausalLM
from .quantize_model import attach_stored


def load_model(
    model_dir: str | Path,
    architectures: Mapping[str, Callable[[dict[str, Any]], CausalLM]],
    device: torch.device,
    dtype: torch.dtype,
    quantization: str = "none",
) -> CausalLM:
    """The checkpoint in `model_dir` as a ready model on `device` in `dtype`, its stored quantized
    weights attached as `quantization` asks (`quantize_model.attach_stored`)."""
    hf_config = read_hf_config(model_dir)
    arch = architecture_of(hf_config)
    factory = architectures.get(arch)
    if factory is None:
        raise ConfigError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(architectures))}")
    checkpoint = open_checkpoint(model_dir, hf_config)
    with torch.device("meta"):
        model = factory(hf_config)
    quantized_only = attach_stored(model, checkpoint, quantization, device, dtype)
    materialize(model, device, dtype)
    model.eval()  # type: ignore[attr-defined]
    load_weights(model, checkpoint.tensors(skip=quantized_only))
    return model


def materialize(model: CausalLM, device: torch.device, dtype: torch.dtype) -> None:
    """Give every meta parameter of `model` uninitialised storage on `device`, floating ones in `dtype`.

    What `module.to(dtype).to_empty(device)` does, without its meta-tensor path: that one runs
    `empty_like` through torch's Python references, which import sympy (32 MB resident for the life
    of the process) to reason about strides a plain `torch.empty` never has."""
    for module in model.modules():  # type: ignore[attr-defined]
        for name, param in module.named_parameters(recurse=False):
            kind = dtype if param.is_floating_point() else param.dtype
            data = torch.empty(param.shape, dtype=kind, device=device)  # same shape as the meta parameter
            module._parameters[name] = torch.nn.Parameter(data, requires_grad=False)


def load_weights(model: CausalLM, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Fill every parameter of `model` from the checkpoint's (name, tensor) pairs."""
    params = dict(model.named_parameters())  # type: ignore[attr-defined]
    filled: set[tuple[str, str | None]] = set()
    for name, tensor in tensors:
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
        shards = _shards(model, target)
        filled |= {(target, s) for s in shards} if shard_id is None and shards else {(target, shard_id)}
    expected: set[tuple[str, str | None]] = set()
    for p in params:
        shards = _shards(model, p)
        expected |= {(p, s) for s in shards} if shards else {(p, None)}
    missing = sorted(f"{p}[{s}]" if s else p for p, s in expected - filled)
    if missing:
        more = " ..." if len(missing) > 8 else ""
        raise ConfigError(f"checkpoint lacks weights for: {', '.join(missing[:8])}{more}")


def _shards(model: CausalLM, param: str) -> list[str]:
    """The parts of a fused parameter (a `MergedLinear`'s shard ids), or [] for a plain one."""
    return list(getattr(model.get_submodule(param.rpartition(".")[0]), "shard_offsets", None) or [])  # type: ignore[attr-defined]


def _target(name: str, packed: Mapping[str, tuple[str, str]]) -> tuple[str, str | None]:
    """Checkpoint name -> (parameter name, shard id) through the model's fused-module map."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in packed:
            fused, shard_id = packed[part]
            return ".".join(parts[:i] + [fused] + parts[i + 1 :]), shard_id
    return name, None
