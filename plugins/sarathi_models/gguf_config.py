"""config.json and generation_config.json of a converted GGUF, from its metadata.

Every hyper-parameter the model needs is in the GGUF under `<architecture>.*` (`llama.*`, `qwen2.*`);
the ones llama.cpp may leave out take Hugging Face's defaults (no separate KV head count means
multi-head attention, no rope base means 10000). Word embeddings are tied exactly when the file has no
`output.weight`. `rope_theta` is written in the classic form, which transformers 4 and 5 and our own
loader all read. A `qwen2` file is `Qwen2ForCausalLM` (biases on Q, K and V, no sliding window: the
GGUF keeps none).

Imports only the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from typing import Any

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile

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
    if "rope_freqs.weight" in names:
        raise ConfigError(f"{file.path.name}: Llama 3.1 rope frequency factors (rope_freqs) are not supported yet")
    qwen2 = file.architecture == "qwen2"
    config: dict[str, Any] = {
        "architectures": ["Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen2 else "llama",
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
    if qwen2:
        config["use_sliding_window"] = False
    if (rope_scaling := _rope_scaling(file)) is not None:
        config["rope_scaling"] = rope_scaling
    config.update(special_token_ids(file))
    return config


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
