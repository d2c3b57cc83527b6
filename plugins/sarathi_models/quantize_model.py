"""Give a loaded model's linear layers the weight forms the CPU kernels read: quantized, as
`EngineConfig.quantization` asks (`quantize_model`), and packed for oneDNN (`prepack_model`).

- "auto": the weights a GGUF file stored as Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q5_K / Q6_K
  (the converted folder's `quantized.safetensors`, see `gguf_blocks`) get a quantized kernel, as
  stored (the embedding's form serves the tied LM head; the 8-bit path, which all but the 4-bit types
  take, needs the CPU kernels); every other weight stays as loaded.
- "int4" / "int8": as "auto", and every other linear weight (the tied LM head included) is quantized
  round-to-nearest: int4 in groups of 32, int8 per output channel.
- "none": nothing is quantized.

Quantized kernels run on bf16 activations on the CPU only (see `quant`): "auto" does nothing for
another dtype or device, and "int4" / "int8" there are a ConfigError. The bf16 weights stay loaded
beside the quantized ones (packed, below): steps of many rows (prefill chunks) run on them (see
`quant`).

`prepack_model` then packs every bf16 CPU linear weight into oneDNN's layout (see `prepack`): the
steps that do not take a quantized kernel multiply with it, the same bits as the plain weight.

Imports torch, safetensors, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sarathi_sdk import ConfigError

from .cpu_ops import cpu_kernels
from .gguf_weights import QUANTIZED_FILE
from .layers import Linear, MergedLinear
from .prepack import can_prepack
from .protocols import CausalLM
from .quant import QuantizedWeight, pack_codes, pack_int4, quantize_int4, quantize_int8

TIED_HEAD = "model.embed_tokens"
"""The embedding's module name: with tied embeddings its stored form is the LM head's."""


def quantize_model(model: CausalLM, model_dir: str | Path, mode: str, device: torch.device, dtype: torch.dtype) -> int:
    """Attach quantized weights to `model`'s linear layers; returns how many layers got one."""
    if mode == "none":
        return 0
    if device.type != "cpu" or dtype != torch.bfloat16:
        if mode == "auto":
            return 0
        raise ConfigError(f"quantization {mode!r} runs on the CPU in bfloat16; got {device.type} {dtype}")
    stored = _stored(Path(model_dir), model)
    count = 0
    for name, module in model.named_modules():  # type: ignore[attr-defined]
        if not isinstance(module, Linear):
            continue
        module.quantized = stored.get(name) or _requantized(module.weight, mode)
        count += module.quantized is not None
    if getattr(model, "lm_head", None) is None:
        embedding = model.model.embed_tokens  # type: ignore[attr-defined]
        head = stored.get(TIED_HEAD) or _requantized(embedding.weight, mode)
        model.tied_head_quantized = head  # type: ignore[attr-defined]
        count += head is not None
    return count


def prepack_model(model: CausalLM, device: torch.device, dtype: torch.dtype) -> int:
    """Pack every linear weight of `model` for oneDNN where `can_prepack`; returns how many. Run it
    after `quantize_model`, which quantizes from the plain weights."""
    if not can_prepack(device, dtype):
        return 0
    layers = [module for module in model.modules() if isinstance(module, Linear)]  # type: ignore[attr-defined]
    for layer in layers:
        layer.pack()
    return len(layers)


def _requantized(weight: torch.Tensor, mode: str) -> QuantizedWeight | None:
    if mode == "int4":
        return quantize_int4(weight)
    if mode == "int8":
        return quantize_int8(weight)
    return None


def _stored(model_dir: Path, model: CausalLM) -> dict[str, QuantizedWeight]:
    """Module name -> its quantized weight as the checkpoint stored it, for every module all of whose
    parts (of a fused one) the folder's `quantized.safetensors` holds.

    Parts all 4-bit take the 4-bit kernel; parts of mixed forms (a GGUF Q4_K_M file stores Q, K and V
    of one layer as Q4_K, Q4_K and Q6_K) take the 8-bit path together: a 4-bit code is an 8-bit one, and
    a scale and minimum per group are one per half group twice over, so every part keeps its weight."""
    path = model_dir / QUANTIZED_FILE
    if not path.is_file():
        return {}
    from .loader import open_safetensors

    fused = cpu_kernels(torch.empty(0, dtype=torch.bfloat16))
    with open_safetensors(path) as handle:
        modules: dict[str, dict[str | None, tuple[str, str]]] = {}
        for key in handle.keys():
            name, _, kind = key.rpartition(".")
            if kind in ("q4", "u8"):
                module, shard = _module_of(name, model.packed_modules)
                modules.setdefault(module, {})[shard] = (kind, name)
        found: dict[str, QuantizedWeight] = {}
        for module_name, parts in modules.items():
            module = model.get_submodule(module_name)  # type: ignore[attr-defined]
            order = list(module.shard_offsets) if isinstance(module, MergedLinear) else [None]
            if set(parts) != set(order):
                continue  # a part stored in another format: the module keeps its bf16 weight
            stored = [_stored_part(handle, *parts[shard]) for shard in order]
            if all(kind == "q4" for kind, _ in parts.values()):
                codes, scale, minimum = (torch.cat(arrays, dim=0) for arrays in zip(*stored))
                found[module_name] = pack_int4(codes, scale, minimum)
            elif fused is not None:
                width = max(scale.shape[1] for _, scale, _ in stored)  # K / 16 where a part has half groups
                codes = torch.cat([c for c, _, _ in stored], dim=0)  # [N, K] uint8
                scale, minimum = (torch.cat([a.repeat_interleave(width // a.shape[1], dim=1) for a in arrays], dim=0)
                                  for arrays in ([s for _, s, _ in stored], [m for _, _, m in stored]))
                found[module_name] = pack_codes(codes, scale, minimum, bits=8, fused=fused)
    return found


def _stored_part(handle: Any, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stored weight: codes [n, K] uint8, scale and minimum [n, K / 32] (or [n, K / 16]) fp16."""
    if kind == "q4":
        packed = handle.get_tensor(name + ".q4")  # [n, K/2]: two codes a byte
        codes = torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(1)
    else:
        codes = handle.get_tensor(name + ".u8")
    return codes, handle.get_tensor(f"{name}.{kind}_scale"), handle.get_tensor(f"{name}.{kind}_min")


def _module_of(tensor_name: str, packed: Mapping[str, tuple[str, str]]) -> tuple[str, str | None]:
    """Checkpoint weight name -> (module name, shard id) through the model's fused-module map."""
    parts = tensor_name.removesuffix(".weight").split(".")
    if parts[-1] in packed:
        fused, shard = packed[parts[-1]]
        return ".".join(parts[:-1] + [fused]), shard
    return ".".join(parts), None
