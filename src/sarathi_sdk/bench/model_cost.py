"""What a step costs in bytes moved and in FLOPs, from the model's shape: the numerators of MBU and MFU.

Counted from a Llama-family `config.json` (hidden size, layers, heads, KV heads, MLP width, vocab):

- bytes: every linear weight once per step (the step's rows share one read), the LM head included,
  at `weight_bytes` per parameter, plus the keys and values attention reads and the ones it writes;
- FLOPs: 2 per parameter per token for the layers' linear weights, 2 per LM-head parameter per sampled
  row, and 4 * heads * head_dim per (query, key) pair of attention (QK^T and PV).

Weights are counted at the engine's dtype. A quantized model's small decode steps read fewer bytes
(4-bit weights on the CPU fast path), so their MBU is overstated by that factor; the bench says which
dtype it counted. `bytes_per_decode_token` reads the same from a loaded model instead. Imports only the
standard library, the contract modules and the benchmark's records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..interfaces import ModelBackend
from .records import StepRecord

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True, slots=True)
class ModelCost:
    layer_params: int
    """Linear-weight parameters of all decoder layers together (attention projections and MLP)."""
    head_params: int
    """LM-head parameters (vocab x hidden), read by every step that samples."""
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    weight_bytes: int
    kv_bytes: int
    """Bytes of one cached key or value element."""

    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: str = "bfloat16") -> ModelCost:
        try:
            hidden = int(config["hidden_size"])
            layers = int(config["num_hidden_layers"])
            heads = int(config["num_attention_heads"])
            kv_heads = int(config.get("num_key_value_heads") or heads)
            head_dim = int(config.get("head_dim") or hidden // heads)
            mlp = int(config["intermediate_size"])
            vocab = int(config["vocab_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"config.json lacks a Llama-family shape field: {exc!r}") from exc
        if dtype not in DTYPE_BYTES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
        attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o; k, v
        return cls(
            layer_params=layers * (attention + 3 * hidden * mlp),
            head_params=vocab * hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            weight_bytes=DTYPE_BYTES[dtype],
            kv_bytes=DTYPE_BYTES[dtype],
        )

    @classmethod
    def from_folder(cls, folder: str | Path, dtype: str = "bfloat16") -> ModelCost:
        path = Path(folder) / "config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the model shape from {path}: {exc}") from exc
        return cls.from_config(config, dtype)

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes

    def step_bytes(self, step: StepRecord) -> int:
        weights = self.layer_params + (self.head_params if step.num_sampled else 0)
        return weights * self.weight_bytes + (step.kv_tokens_read + step.num_tokens) * self.kv_bytes_per_token

    def step_flops(self, step: StepRecord) -> int:
        linear = 2 * self.layer_params * step.num_tokens + 2 * self.head_params * step.num_sampled
        return linear + 4 * self.num_layers * self.num_heads * self.head_dim * step.attention_pairs


def bytes_per_decode_token(backend: ModelBackend | None, context: int) -> int:
    """What one batch-1 decode step reads: every weight in the form a one-row step reads it (the
    quantized form where a layer has one, else the packed or plain one, the embedding row aside) plus the KV of `context` tokens.
    Reads the bundled torch backend's model: a benchmark of that backend, not of the public API."""
    model: Any = getattr(backend, "model", None)  # the torch backend's; not part of the protocol
    if model is None:
        raise ValueError(f"{type(backend).__name__} is not the bundled torch backend: it has no model to measure")
    total = 0
    for name, module in model.named_modules():
        quantized = getattr(module, "quantized", None)
        prepacked = getattr(module, "prepacked", None)
        if quantized is not None:
            total += quantized.nbytes
        elif prepacked is not None:
            total += prepacked.nbytes + sum(p.nbytes for p in module.parameters(recurse=False))
        elif name.endswith("embed_tokens"):
            head = model.tied_head_quantized
            total += head.nbytes if head is not None else module.weight.nbytes
        else:
            total += sum(p.nbytes for p in module.parameters(recurse=False))
    cfg = model.config
    return int(total + 2 * cfg.num_layers * context * cfg.num_kv_heads * cfg.head_dim * 2)
