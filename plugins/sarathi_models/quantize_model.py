"""Give a model's linear layers the weight forms the CPU kernels read: quantized, as
`EngineConfig.quantization` asks (`attach_stored` while loading, `quantize_model` after), and packed
for oneDNN (`prepack_model`).

- "auto": the weights a GGUF file stored as Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q5_K / Q6_K
  (read from the file, or a converted folder's `quantized.safetensors`: see `checkpoint`) get a
  quantized kernel, as stored, and no dense copy (the embedding's form serves its lookups and the tied
  LM head; the 8-bit path, which all but the 4-bit types take, needs the CPU kernels); every other
  weight stays as loaded.
- "int4" / "int8": as "auto", and every other linear weight (the tied LM head included) is quantized
  round-to-nearest: int4 in groups of 32, int8 per output channel.
- "none": nothing is quantized.

Quantized kernels run on bf16 activations on the CPU only (see `quant`): "auto" does nothing for
another dtype or device, and "int4" / "int8" there are a ConfigError. Steps of many rows (prefill
chunks) multiply bf16 weights (see `quant`): a stored weight dequantized for the step, a requantized
one's original bf16 weight, kept beside it (packed, below).

`prepack_model` then packs every bf16 CPU linear weight into oneDNN's layout (see `prepack`): the
steps that do not take a quantized kernel multiply with it, the same bits as the plain weight.

Imports torch, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sarathi_sdk import ConfigError, release_free_memory

from .checkpoint import Checkpoint, StoredRows, StoredWeight
from .cpu_ops import cpu_kernels
from .layers import Embedding, Linear, MergedLinear
from .prepack import can_prepack
from .protocols import CausalLM
from .quant import (
    GROUP_SIZE,
    PackedWeight,
    QuantizedWeight,
    RowReader,
    pack_int4,
    pack_rows,
    quantize_int4,
    quantize_int8,
)


def attach_stored(model: CausalLM, checkpoint: Checkpoint, mode: str, device: torch.device,
                  dtype: torch.dtype) -> set[str]:
    """Give each module of `model` (still on the meta device) whose weight `checkpoint` stores quantized
    that form, as `mode` allows; returns the checkpoint names now served by it alone.

    A module takes its stored form when the checkpoint holds every part of it (each of a fused one's).
    Parts all 4-bit take the 4-bit kernel, parts of at most 5 bits (Q5_0, Q5_1, Q5_K, with Q4 ones) the
    5-bit one, parts of at most 6 bits with a Q6_K one (a GGUF Q4_K_M file stores Q, K and V of one
    layer as Q4_K, Q4_K and Q6_K) the 6-bit one, and any with an 8-bit part (Q8_0) the 8-bit path: a
    narrower code is a wider one, and a scale and minimum per group are one per half group twice over,
    so every part keeps its weight. With the CPU
    kernels (a `PackedWeight`) the module drops its dense weight: steps of many rows dequantize the
    codes (`Linear`), so the loader never reads it. Without them, 4-bit weights take torch's int4
    kernel beside the dense weight, and 5- and 8-bit ones stay dense.

    The heap is trimmed after each module: a weight is read as one byte a code before it is packed,
    and once glibc has freed such a temporary (the 28 MB embedding of the default model) it serves the
    next ones from its heap and keeps them when freed, which held 12 MB beside the codes at the peak."""
    if mode == "none" or device.type != "cpu" or dtype != torch.bfloat16:
        return set()
    stored = checkpoint.quantized_weights()
    fused = cpu_kernels(torch.empty(0, dtype=torch.bfloat16))
    modules: dict[str, dict[str | None, str]] = {}
    for name in stored:
        if not any(f"{name}.weight".endswith(suffix) for suffix in model.ignored_weights):
            module, shard = _module_of(name, model.packed_modules)
            modules.setdefault(module, {})[shard] = name
    quantized_only: set[str] = set()
    for module_name, parts in modules.items():
        module = model.get_submodule(module_name)  # type: ignore[attr-defined]
        order = list(module.shard_offsets) if isinstance(module, MergedLinear) else [None]
        names = [parts[shard] for shard in order if shard in parts]
        if len(names) != len(order) or (fused is None and any(stored[n] != 4 for n in names)):
            continue  # a part stored in another form, or 5-/8-bit codes without the kernels: dense
        weight = _stored_weight([checkpoint.quantized(n) for n in names], max(stored[n] for n in names), fused)
        if isinstance(module, Embedding):
            if getattr(model, "lm_head", None) is None:
                model.tied_head_quantized = weight  # type: ignore[attr-defined]
            if not isinstance(weight, PackedWeight):
                continue
        module.quantized = weight
        if isinstance(weight, PackedWeight):
            module.weight = None
            quantized_only |= {f"{n}.weight" for n in names}
        release_free_memory()  # this module's read-and-pack temporaries (see below)
    return quantized_only


def quantize_model(model: CausalLM, mode: str, device: torch.device, dtype: torch.dtype) -> int:
    """Quantize the linear layers without a stored quantized weight as `mode` asks ("int4", "int8");
    returns how many layers (the tied LM head included) run a quantized kernel in all."""
    if mode == "none":
        return 0
    if device.type != "cpu" or dtype != torch.bfloat16:
        if mode == "auto":
            return 0
        raise ConfigError(f"quantization {mode!r} runs on the CPU in bfloat16; got {device.type} {dtype}")
    count = 0
    for module in model.modules():  # type: ignore[attr-defined]
        if isinstance(module, Linear):
            if module.quantized is None and module.weight is not None:
                module.quantized = _requantized(module.weight, mode)
            count += module.quantized is not None
    if getattr(model, "lm_head", None) is None:
        embedding = model.model.embed_tokens  # type: ignore[attr-defined]
        if model.tied_head_quantized is None:  # type: ignore[attr-defined]
            model.tied_head_quantized = _requantized(embedding.weight, mode)  # type: ignore[attr-defined]
        count += model.tied_head_quantized is not None  # type: ignore[attr-defined]
    return count


def prepack_model(model: CausalLM, device: torch.device, dtype: torch.dtype) -> int:
    """Pack every dense linear weight of `model` for oneDNN where `can_prepack`; returns how many. Run
    it after `quantize_model`, which quantizes from the plain weights."""
    if not can_prepack(device, dtype):
        return 0
    layers = [m for m in model.modules() if isinstance(m, Linear) and m.weight is not None]  # type: ignore[attr-defined]
    for layer in layers:
        layer.pack()
    return len(layers)


def _requantized(weight: torch.Tensor, mode: str) -> QuantizedWeight | None:
    if mode == "int4":
        return quantize_int4(weight)
    if mode == "int8":
        return quantize_int8(weight)
    return None


def _stored_weight(parts: list[StoredRows], bits: int, fused: object | None) -> QuantizedWeight:
    """One module's stored parts (output rows in order), the widest of `bits` bits, as one quantized
    weight (see `attach_stored`): 4-bit parts on the 4-bit path, parts of at most 5 bits on the 5-bit
    one, parts of at most 6 bits with a Q6_K one among them on the 6-bit path (scales per half group),
    any with 8 bits on the 8-bit path. With the kernels the parts are read and packed a thousand rows
    at a time (`pack_rows`)."""
    if bits == 4 and fused is None:
        codes, scale, minimum = (_rows_of(list(arrays)) for arrays in zip(*(part.whole() for part in parts)))
        return pack_int4(codes, scale, minimum)
    width = max(part.scale_width for part in parts)  # K / 16 where a part has half groups
    k = parts[0].inputs
    halves = width * GROUP_SIZE != k
    code_bits = 6 if halves and bits <= 6 else bits
    return pack_rows(sum(part.rows for part in parts), k, width, _joined(parts, width), code_bits, fused)


def _joined(parts: list[StoredRows], width: int) -> RowReader:
    """Rows of the parts' rows one after another, scales per half group where `width` asks for them (a
    scale and minimum per group are one per half group twice over)."""
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part.rows)

    def read(start: int, stop: int) -> StoredWeight:
        pieces = []
        for part, offset in zip(parts, offsets, strict=False):
            low, high = max(start, offset), min(stop, offset + part.rows)
            if low < high:
                codes, scale, minimum = part.read(low - offset, high - offset)
                if part.scale_width != width:
                    repeat = width // part.scale_width
                    scale, minimum = scale.repeat_interleave(repeat, dim=1), minimum.repeat_interleave(repeat, dim=1)
                pieces.append((codes, scale, minimum))
        codes, scale, minimum = (_rows_of(list(arrays)) for arrays in zip(*pieces))
        return codes, scale, minimum

    return read


def _rows_of(parts: list[torch.Tensor]) -> torch.Tensor:
    """The parts' rows one after another (a single part as it is: no copy of a large weight)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _module_of(tensor_name: str, packed: Mapping[str, tuple[str, str]]) -> tuple[str, str | None]:
    """Checkpoint weight name -> (module name, shard id) through the model's fused-module map."""
    parts = tensor_name.removesuffix(".weight").split(".")
    if parts[-1] in packed:
        fused, shard = packed[parts[-1]]
        return ".".join(parts[:-1] + [fused]), shard
    return ".".join(parts), None
