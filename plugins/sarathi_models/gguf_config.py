"""config.json and generation_config.json of a converted GGUF, from its metadata.

Every hyper-parameter the model needs is in the GGUF under `<architecture>.*` (`llama.*`, `qwen2.*`);
the ones llama.cpp may leave out take Hugging Face's defaults (no separate KV head count means
multi-head attention, no rope base means 10000). Word embeddings are tied exactly when the file has no
`output.weight`. `rope_theta` is written in the classic form, which transformers 4 and 5 and our own
loader all read. A `qwen2` file is `Qwen2ForCausalLM` (biases on Q, K and V), a `qwen3` one
`Qwen3ForCausalLM` (Q and K normalized per head); neither with a sliding window (the GGUF keeps none).
`gemma2` and `gemma3` files take what llama.cpp reads from them, with its defaults (`_gemma`).

Imports only the standard library, numpy (when a file has rope_freqs), this package and the public
`sarathi_sdk` API.
"""

from __future__ import annotations

from typing import Any

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
"""The Hugging Face class of each GGUF architecture the converter maps."""
STORED_DTYPE = "float32"
"""Dequantized weights are fp32 values (scale * quant + min, computed in fp32); storing them as fp32
keeps them exactly, so a converted folder computes what the GGUF computes. bf16 would round away
8 mantissa bits on top of the quantization; the backend casts at load time when it wants bf16."""


def model_config(file: GGUFFile) -> dict[str, Any]:
    hidden = _required(file, "embedding_length")
    heads = _required(file, "attention.head_count")
    head_dim = file.hparam("attention.key_length", hidden // heads)
    rotary_dim = file.hparam("rope.dimension_count", head_dim)
    if rotary_dim != head_dim:
        raise ConfigError(f"{file.path.name}: partial rotary embeddings ({rotary_dim} of {head_dim}) are not supported")
    names = {tensor.name for tensor in file.tensors}
    model_type = file.architecture  # llama, qwen2 or qwen3 (`gguf_file.SUPPORTED_ARCHITECTURES`)
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": _vocab_size(file),
        "hidden_size": hidden,
        "intermediate_size": _required(file, "feed_forward_length"),
        "num_hidden_layers": _required(file, "block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": file.hparam("attention.head_count_kv", heads),
        "head_dim": head_dim,
        "max_position_embeddings": file.hparam("context_length", 2048),
        "rms_norm_eps": float(file.hparam("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(file.hparam("rope.freq_base", 10000.0)),
        "hidden_act": "silu",
        "attention_bias": "blk.0.attn_q.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
        "tie_word_embeddings": "output.weight" not in names,
        "torch_dtype": STORED_DTYPE,
    }
    if model_type in ("qwen2", "qwen3"):
        config["use_sliding_window"] = False
    if (rope_scaling := _rope_scaling(file)) is not None:
        config["rope_scaling"] = rope_scaling
    if (factors := _rope_freqs(file)) is not None:
        config["rope_scaling"] = llama3_rope_scaling(factors, config["rope_theta"], head_dim, file.path.name)
    if model_type in ("gemma2", "gemma3"):
        config = _gemma(file, config)
    config.update(special_token_ids(file))
    return config


def _gemma(file: GGUFFile, config: dict[str, Any]) -> dict[str, Any]:
    """A Gemma file's config, as llama.cpp runs it (src/llama-model.cpp, src/llama-hparams.cpp):

    - layer i is windowed when (i + 1) % pattern != 0, pattern `attention.sliding_window_pattern` (2 for
      Gemma 2, 6 for Gemma 3); a Gemma 3 file without `attention.sliding_window` has no window at all;
    - scores are scaled by head_dim**-0.5, except for the 27B models (46 layers of Gemma 2, 62 of Gemma
      3: hidden / heads); the file does not say `query_pre_attn_scalar`;
    - Gemma 2 caps scores and logits (50 and 30 unless the file says otherwise); Gemma 3 caps logits
      only when the file has `final_logit_softcapping`;
    - Gemma 3's windowed layers rotate with base `rope.freq_base_swa` (10000) and no scaling; its
      `rope.freq_base` and `rope.scaling` are the other layers'.
    """
    model_type, layers = config["model_type"], config["num_hidden_layers"]
    gemma2 = model_type == "gemma2"
    window = file.hparam("attention.sliding_window", 4096 if gemma2 else 0)
    pattern = file.hparam("attention.sliding_window_pattern", 2 if gemma2 else 6)
    if isinstance(pattern, list):  # one flag per layer, true where windowed
        windowed = [bool(flag) for flag in pattern]
    else:
        windowed = [bool(window) and (i + 1) % int(pattern) != 0 for i in range(layers)]
    config.update(
        hidden_act="gelu_pytorch_tanh",
        hidden_activation="gelu_pytorch_tanh",
        sliding_window=int(window) or None,
        layer_types=["sliding_attention" if w else "full_attention" for w in windowed],
        query_pre_attn_scalar=(config["hidden_size"] // config["num_attention_heads"]
                               if layers == (46 if gemma2 else 62) else config["head_dim"]),
        attn_logit_softcapping=float(file.hparam("attn_logit_softcapping", 50.0)) if gemma2 else None,
        final_logit_softcapping=(float(file.hparam("final_logit_softcapping", 30.0)) if gemma2
                                 else _optional(file.hparam("final_logit_softcapping"))),
    )
    if gemma2:
        return config
    config["model_type"] = "gemma3_text"
    full = {"rope_type": "default", "rope_theta": config.pop("rope_theta")}
    full.update(config.pop("rope_scaling", None) or {})
    local = {"rope_type": "default", "rope_theta": float(file.hparam("rope.freq_base_swa", 10000.0))}
    config["rope_parameters"] = {"full_attention": full, "sliding_attention": local}
    return config


def _optional(value: Any) -> float | None:
    return None if value is None or not float(value) else float(value)


def generation_config(file: GGUFFile) -> dict[str, Any]:
    return special_token_ids(file)


def special_token_ids(file: GGUFFile) -> dict[str, int]:
    keys = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id", "pad_token_id": "padding_token_id"}
    return {
        name: int(file.metadata[f"tokenizer.ggml.{key}"])
        for name, key in keys.items()
        if f"tokenizer.ggml.{key}" in file.metadata
    }


def _rope_scaling(file: GGUFFile) -> dict[str, Any] | None:
    kind = file.hparam("rope.scaling.type", "none")
    if kind == "none":
        return None
    if kind == "linear":
        return {"rope_type": "linear", "factor": float(file.hparam("rope.scaling.factor", 1.0))}
    raise ConfigError(f"{file.path.name}: rope scaling {kind!r} is not supported")


def _rope_freqs(file: GGUFFile) -> list[float] | None:
    """The `rope_freqs.weight` tensor (Llama 3.1's files): a divisor per rotary frequency, or None."""
    for tensor in file.tensors:
        if tensor.name == "rope_freqs.weight":
            return [float(v) for v in tensor.values().ravel()]
    return None


def llama3_rope_scaling(factors: list[float], theta: float, head_dim: int, name: str) -> dict[str, Any]:
    """Llama 3's rope scaling (transformers' `rope_type: llama3`) that divides each frequency by the
    file's factor for it, as llama.cpp's converter computed them from that scaling.

    Frequencies of wavelength below original / high_freq_factor keep a factor 1, those above
    original / low_freq_factor take `factor`, and between them 1 / factor_i = (1 - s) / factor + s with
    s = (original / wavelength - low) / (high - low), linear in 1 / wavelength: two factors in between
    give its slope and intercept. The three lengths are fixed only up to a common scale, so low is
    set to 1. The scaling found must give back every factor (to fp32 precision), else ConfigError."""
    import math

    freqs = [theta ** (-2 * i / head_dim) for i in range(len(factors))]
    wavelengths = [2 * math.pi / f for f in freqs]
    factor = max(factors)
    if factor <= 1.0:
        raise ConfigError(f"{name}: rope_freqs without any frequency scaled down are not Llama 3's scaling")
    between = [(w, f) for w, f in zip(wavelengths, factors) if 1.0 + 1e-6 < f < factor * (1 - 1e-6)]
    if len(between) >= 2:
        (w0, f0), (w1, f1) = between[0], between[-1]
        s0, s1 = ((1 / f - 1 / factor) / (1 - 1 / factor) for f in (f0, f1))
        slope = (s1 - s0) / (1 / w1 - 1 / w0)  # original / (high - low)
        intercept = s0 - slope / w0  # -low / (high - low)
        high = 1 - 1 / intercept
        original = slope * (high - 1)
    else:  # one factor in between, or none: the lengths are free within the bands the factors show
        # the largest whole length below the first wavelength scaled by `factor`
        original = float(math.floor(min(w for w, f in zip(wavelengths, factors) if f >= factor * (1 - 1e-6)) * (1 - 1e-6)))
        if between:
            (w0, f0), = between
            high = 1 + (original / w0 - 1) / ((1 / f0 - 1 / factor) / (1 - 1 / factor))
        else:
            short = max((w for w, f in zip(wavelengths, factors) if f <= 1.0 + 1e-6), default=min(wavelengths) / 2)
            high = original / (short * (1 + 1e-6))
    # config.json's original_max_position_embeddings is an integer: the round values where they fit
    candidates = [(round(original), round(high, 4)), (round(original), high), (original, high)]
    for length, band in candidates:
        scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": band,
                   "original_max_position_embeddings": length}
        worst = max(abs(_llama3_factor(w, scaling) - f) / f for w, f in zip(wavelengths, factors))
        if worst <= 1e-5:
            return scaling
    raise ConfigError(f"{name}: rope_freqs are not Llama 3's rope scaling (no scaling gives them back: off by "
                      f"{worst:.2g} at best)")


def _llama3_factor(wavelength: float, scaling: dict[str, Any]) -> float:
    """The divisor Llama 3's scaling applies to the frequency of this wavelength (transformers' formula)."""
    original, factor = scaling["original_max_position_embeddings"], scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    if wavelength < original / high:
        return 1.0
    if wavelength > original / low:
        return float(factor)
    smooth = (original / wavelength - low) / (high - low)
    return 1 / ((1 - smooth) / factor + smooth)


def _vocab_size(file: GGUFFile) -> int:
    tokens = file.metadata.get("tokenizer.ggml.tokens")
    return int(file.hparam("vocab_size", len(tokens) if tokens else 0)) or _embedding_rows(file)


def _embedding_rows(file: GGUFFile) -> int:
    for tensor in file.tensors:
        if tensor.name == "token_embd.weight":
            return int(tensor.shape[-1])
    raise ConfigError(f"{file.path.name}: no token_embd.weight tensor")


def _required(file: GGUFFile, key: str) -> Any:
    value = file.hparam(key)
    if value is None:
        raise ConfigError(f"{file.path.name}: metadata {file.architecture}.{key} is missing")
    return value
