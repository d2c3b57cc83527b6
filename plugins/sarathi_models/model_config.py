"""ModelConfig: the shape of a Llama-family checkpoint, read from its config.json.

One frozen dataclass for Llama, Mistral, Qwen2, Qwen3, Phi-3 and Gemma 2/3: the first five differ only
in which projections carry a bias, which layers use a sliding window and whether Q and K are normalized
(Phi-3's checkpoints also store q/k/v and gate/up already fused, which the loader takes as they are), so
each architecture is a `family` of quirks here rather than a class of its own. Gemma adds its own
(`gemma_norms`, GELU, logit soft-capping, a separate rotary base for its windowed layers), which
`gemma.py` builds on the same layers. Reads both spellings of RoPE settings: transformers < 5 writes `rope_theta` and
`rope_scaling`, transformers 5 writes `rope_parameters`.

Imports only the standard library and the public `sarathi_sdk` API (no torch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarathi_sdk import ConfigError

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3")
GEMMA_FAMILIES = ("gemma2", "gemma3")
ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True, slots=True)
class RopeConfig:
    """Rotary embedding settings; `rope_type` "llama3" uses the four Llama-3 scaling fields."""

    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True, slots=True)
class ModelConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope: RopeConfig
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    sliding_windows: tuple[int | None, ...] = ()
    """Per layer: attend to the last `w` positions only, or None for full attention."""
    qk_norm: bool = False
    """Qwen3, Gemma 3: an RMSNorm over each head's D of Q and of K, before the rotary embedding."""
    hidden_act: str = "silu"
    """The MLP's gate activation: "silu" (SwiGLU) or "gelu_pytorch_tanh" (Gemma's GeGLU)."""
    gemma_norms: bool = False
    """Gemma: every RMSNorm multiplies by (1 + w) in fp32 (its weights are offsets from 1), each layer
    normalizes the attention and MLP outputs too (four norms, "sandwich"), and the embeddings are
    scaled by sqrt(hidden_size) in the model's dtype."""
    query_pre_attn_scalar: float | None = None
    """Gemma: attention scores are scaled by this**-0.5 rather than head_dim**-0.5."""
    attn_logit_softcapping: float | None = None
    """Gemma 2: attention scores s become c tanh(s / c) before the softmax."""
    final_logit_softcapping: float | None = None
    """Gemma 2: logits z become c tanh(z / c)."""
    local_rope: RopeConfig | None = None
    """Gemma 3: the rotary embedding of the sliding-window layers (the others use `rope`)."""

    @property
    def attention_scale(self) -> float:
        """What q k^T is multiplied by before the softmax."""
        return (self.query_pre_attn_scalar or self.head_dim) ** -0.5

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], family: str) -> ModelConfig:
        """Read a config.json dict of an architecture of `family` ("llama", "mistral", "qwen2", "qwen3",
        "phi3", "gemma2", "gemma3")."""
        if family not in FAMILIES:
            raise ConfigError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
        gemma = family in GEMMA_FAMILIES
        act = hf.get("hidden_activation") or hf.get("hidden_act") or "silu"
        if act != ("gelu_pytorch_tanh" if gemma else "silu"):
            raise ConfigError(f"hidden_act {act!r} is not supported for {family}; it uses "
                              f"{'gelu_pytorch_tanh' if gemma else 'silu'}")
        try:
            hidden = int(hf["hidden_size"])
            heads = int(hf["num_attention_heads"])
            layers = int(hf["num_hidden_layers"])
            config = cls(
                hidden_size=hidden,
                num_layers=layers,
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=int(hf.get("head_dim") or hidden // heads),
                intermediate_size=int(hf["intermediate_size"]),
                vocab_size=int(hf["vocab_size"]),
                max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                rope=_rope_config(_global_rope(hf) if family == "gemma3" else hf),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                qkv_bias=family == "qwen2" or bool(hf.get("attention_bias", False)),
                qk_norm=family in ("qwen3", "gemma3"),
                o_bias=family == "llama" and bool(hf.get("attention_bias", False)),
                mlp_bias=family == "llama" and bool(hf.get("mlp_bias", False)),
                sliding_windows=_sliding_windows(hf, family, layers),
                hidden_act=act,
                gemma_norms=gemma,
                query_pre_attn_scalar=_optional_float(hf, "query_pre_attn_scalar") if gemma else None,
                attn_logit_softcapping=_optional_float(hf, "attn_logit_softcapping") if gemma else None,
                final_logit_softcapping=_optional_float(hf, "final_logit_softcapping") if gemma else None,
                local_rope=_rope_config(_local_rope(hf)) if family == "gemma3" else None,
            )
        except KeyError as exc:
            raise ConfigError(f"config.json lacks the field {exc.args[0]!r}") from None
        if config.num_heads % config.num_kv_heads:
            raise ConfigError(
                f"num_attention_heads ({config.num_heads}) must be a multiple of "
                f"num_key_value_heads ({config.num_kv_heads})"
            )
        return config


def read_hf_config(model_dir: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint folder, as a dict; a missing or broken file is a ConfigError."""
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: a model folder needs config.json") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def architecture_of(hf: Mapping[str, Any]) -> str:
    """The first entry of config.json's "architectures"."""
    archs = hf.get("architectures") or []
    if not archs:
        raise ConfigError('config.json names no "architectures"')
    return str(archs[0])


def _rope_config(hf: Mapping[str, Any]) -> RopeConfig:
    """`rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (earlier versions)."""
    params = dict(hf.get("rope_scaling") or {})
    params.update(hf.get("rope_parameters") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise ConfigError(f"rope_type {rope_type!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    if float(params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))) != 1.0:
        raise ConfigError("partial_rotary_factor other than 1.0 is not supported")
    if rope_type == "default":
        return RopeConfig(theta=float(theta))
    try:
        if rope_type == "linear":
            return RopeConfig(theta=float(theta), rope_type="linear", factor=float(params["factor"]))
        return RopeConfig(
            theta=float(theta),
            rope_type="llama3",
            factor=float(params["factor"]),
            low_freq_factor=float(params["low_freq_factor"]),
            high_freq_factor=float(params["high_freq_factor"]),
            original_max_position_embeddings=round(float(params["original_max_position_embeddings"])),
        )
    except KeyError as exc:
        raise ConfigError(f"{rope_type} RoPE scaling lacks the field {exc.args[0]!r}") from None


def _optional_float(hf: Mapping[str, Any], key: str) -> float | None:
    value = hf.get(key)
    return None if value is None else float(value)


def _global_rope(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    """Gemma 3's full-attention layers' RoPE settings as a flat config: transformers 5 nests them
    under `rope_parameters["full_attention"]`; earlier config.json files give `rope_theta` and
    `rope_scaling` as for Llama."""
    params = hf.get("rope_parameters") or {}
    if "full_attention" in params:
        return {"rope_parameters": params["full_attention"]}
    return {key: hf[key] for key in ("rope_theta", "rope_scaling") if key in hf}


def _local_rope(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    """Gemma 3's sliding-window layers' RoPE settings: `rope_parameters["sliding_attention"]`, or
    `rope_local_base_freq` without scaling (10000 when absent, as transformers defaults it)."""
    params = hf.get("rope_parameters") or {}
    if "sliding_attention" in params:
        return {"rope_parameters": params["sliding_attention"]}
    return {"rope_theta": hf.get("rope_local_base_freq", 10000.0)}


def _sliding_windows(hf: Mapping[str, Any], family: str, num_layers: int) -> tuple[int | None, ...]:
    """Window per layer as transformers applies it: Llama never; Mistral and Phi-3 on every layer when
    `sliding_window` is set; Qwen2 and Qwen3 only with `use_sliding_window`, on the layers `layer_types` marks
    (or, without it, from `max_window_layers` on); Gemma on the layers `layer_types` marks (or, without
    it, all but every `sliding_window_pattern`-th: Gemma 2 every other layer, Gemma 3 five of six)."""
    window = hf.get("sliding_window")
    if family == "llama" or window is None:
        return (None,) * num_layers
    if family in ("mistral", "phi3"):
        return (int(window),) * num_layers
    layer_types = hf.get("layer_types")
    if family in GEMMA_FAMILIES:
        if layer_types is None:
            pattern = int(hf.get("sliding_window_pattern", 2 if family == "gemma2" else 6))
            layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
        return tuple(int(window) if t == "sliding_attention" else None for t in layer_types)
    if not hf.get("use_sliding_window", False):
        return (None,) * num_layers
    if layer_types is None:
        first = int(hf.get("max_window_layers", num_layers))
        layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(num_layers)]
    return tuple(int(window) if t == "sliding_attention" else None for t in layer_types)
