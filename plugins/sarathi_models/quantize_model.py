"""Give a loaded model's linear layers their quantized form, as `EngineConfig.quantization` asks.

- "auto": the weights a GGUF file stored as Q4_0 / Q4_1 (the converted folder's
  `quantized.safetensors`) get the int4 kernel, exactly as stored; every other weight stays as loaded.
- "int4" / "int8": as "auto", and every other linear weight (the tied LM head included) is quantized
  round-to-nearest: int4 in groups of 32, int8 per output channel.
- "none": nothing is quantized.

Quantized kernels run on bf16 activations on the CPU only (see `quant`): "auto" does nothing for
another dtype or device, and "int4" / "int8" there are a ConfigError. The bf16 weights stay loaded
beside the quantized ones: steps of many rows are faster on them.

Imports torch, safetensors, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from sarathi_sdk import ConfigError

from .gguf_weights import QUANTIZED_FILE
from .layers import Linear, MergedLinear
from .protocols import CausalLM
from .quant import Int4Weight, QuantizedWeight, pack_int4, quantize_int4, quantize_int8


def quantize_model(model: CausalLM, model_dir: str | Path, mode: str, device: torch.device, dtype: torch.dtype) -> int:
    """Attach quantized weights to `model`'s linear layers; returns how many layers got one."""
    if mode == "none":
        return 0
    if device.type != "cpu" or dtype != torch.bfloat16:
        if mode == "auto":
            return 0
        raise ConfigError(f"quantization {mode!r} runs on the CPU in bfloat16; got {device.type} {dtype}")
    stored = _stored_int4(Path(model_dir), model)
    count = 0
    for name, module in model.named_modules():  # type: ignore[attr-defined]
        if not isinstance(module, Linear):
            continue
        module.quantized = stored.get(name) or _requantized(module.weight, mode)
        count += module.quantized is not None
    if getattr(model, "lm_head", None) is None and mode in ("int4", "int8"):
        model.tied_head_quantized = _requantized(model.model.embed_tokens.weight, mode)  # type: ignore[attr-defined]
        count += 1
    return count


def _requantized(weight: torch.Tensor, mode: str) -> QuantizedWeight | None:
    if mode == "int4":
        return quantize_int4(weight)
    if mode == "int8":
        return quantize_int8(weight)
    return None


def _stored_int4(model_dir: Path, model: CausalLM) -> dict[str, Int4Weight]:
    """Module name -> its int4 weight, for every linear layer whose checkpoint tensors (all parts of
    a fused one) the folder's `quantized.safetensors` holds."""
    path = model_dir / QUANTIZED_FILE
    if not path.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        names = {key.removesuffix(".q4") for key in handle.keys() if key.endswith(".q4")}
        modules: dict[str, list[tuple[str | None, str]]] = {}
        for name in names:  # e.g. model.layers.0.self_attn.q_proj.weight
            module, shard = _module_of(name, model.packed_modules)
            modules.setdefault(module, []).append((shard, name))
        found: dict[str, Int4Weight] = {}
        for module_name, parts in modules.items():
            module = model.get_submodule(module_name)  # type: ignore[attr-defined]
            order = list(module.shard_offsets) if isinstance(module, MergedLinear) else [None]
            by_shard = dict(parts)
            if sorted(by_shard, key=str) != sorted(order, key=str):
                continue  # a fused layer with a part stored in another type keeps its bf16 weight
            packed, scale, minimum = (
                torch.cat([handle.get_tensor(by_shard[s] + suffix) for s in order], dim=0)
                for suffix in (".q4", ".q4_scale", ".q4_min")
            )  # [N, K/2] uint8, [N, K/32] fp16, [N, K/32] fp16
            q = torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(1)  # [N, K]
            found[module_name] = pack_int4(q, scale, minimum)
    return found


def _module_of(tensor_name: str, packed: Mapping[str, tuple[str, str]]) -> tuple[str, str | None]:
    """Checkpoint weight name -> (module name, shard id) through the model's fused-module map."""
    parts = tensor_name.removesuffix(".weight").split(".")
    if parts[-1] in packed:
        fused, shard = packed[parts[-1]]
        return ".".join(parts[:-1] + [fused]), shard
    return ".".join(parts), None
