"""config.json reading, safetensors loading and KV-cache sizing, on checkpoints transformers saved."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from sarathi_models.backend import TorchModelBackend
from sarathi_models.model_config import ModelConfig
from sarathi_models.rope import inverse_frequencies
from sarathi_sdk import ConfigError, EngineConfig
from tests.models.conftest import LLAMA3_ROPE
from tests.models.helpers import RecordingSampler, make_backend, reference_last_logits, run_steps

PROMPT = list(range(3, 90))


def copy_checkpoint(checkpoint, name, tmp_path):
    return shutil.copytree(checkpoint(name), tmp_path / name)


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def last_logits(folder) -> torch.Tensor:
    sampler = RecordingSampler()
    run_steps(make_backend(folder, sampler=sampler), [PROMPT], max_new_tokens=1, token_budget=32)
    return sampler.logits["r0"][0]


def test_rope_theta_of_older_transformers_reads_like_rope_parameters(checkpoint, reference, tmp_path):
    folder = copy_checkpoint(checkpoint, "llama3", tmp_path)
    rope = dict(LLAMA3_ROPE)
    edit_config(folder, rope_parameters=None, rope_theta=rope.pop("rope_theta"), rope_scaling=rope)
    torch.testing.assert_close(last_logits(folder), reference_last_logits(reference("llama3"), PROMPT), atol=1e-4, rtol=0)


def test_llama3_inverse_frequencies_equal_transformers():
    config = transformers.LlamaConfig(hidden_size=256, num_attention_heads=4, rope_parameters=dict(LLAMA3_ROPE))
    want, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    ours = inverse_frequencies(ModelConfig.from_hf(config.to_dict(), "llama").rope, head_dim=64)
    torch.testing.assert_close(ours, want, atol=0, rtol=0)


def test_sliding_windows_per_family_follow_transformers():
    base = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4, "num_hidden_layers": 4,
            "intermediate_size": 8, "vocab_size": 9}
    assert ModelConfig.from_hf({**base, "sliding_window": 8}, "mistral").sliding_windows == (8,) * 4
    assert ModelConfig.from_hf({**base, "sliding_window": 8}, "llama").sliding_windows == (None,) * 4
    assert ModelConfig.from_hf({**base, "sliding_window": 8}, "qwen2").sliding_windows == (None,) * 4
    qwen = transformers.Qwen2Config(**base, use_sliding_window=True, sliding_window=8, max_window_layers=2)
    windows = ModelConfig.from_hf(qwen.to_dict(), "qwen2").sliding_windows
    assert windows == tuple(8 if t == "sliding_attention" else None for t in qwen.layer_types) == (None, None, 8, 8)


def test_sharded_checkpoint_loads_through_its_index(checkpoint):
    folder = checkpoint("llama3")
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("*.safetensors"))) > 1
    backend = make_backend(folder)
    assert backend.model.lm_head is None  # tied to the embedding


def test_unknown_architecture_names_the_known_ones(checkpoint, tmp_path):
    folder = copy_checkpoint(checkpoint, "llama", tmp_path)
    edit_config(folder, architectures=["GPT2LMHeadModel"])
    with pytest.raises(ConfigError, match="GPT2LMHeadModel.*LlamaForCausalLM.*MistralForCausalLM.*Qwen2ForCausalLM"):
        TorchModelBackend(EngineConfig(model=str(folder), device="cpu"))


def test_pickled_weights_are_never_loaded(checkpoint, tmp_path):
    folder = copy_checkpoint(checkpoint, "llama", tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="safetensors"):
        TorchModelBackend(EngineConfig(model=str(folder), device="cpu"))


def test_a_missing_weight_is_a_config_error(checkpoint, tmp_path):
    folder = copy_checkpoint(checkpoint, "llama", tmp_path)
    tensors = load_file(folder / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ConfigError, match=r"model.layers.1.self_attn.qkv_proj.weight\[k\]"):
        TorchModelBackend(EngineConfig(model=str(folder), device="cpu"))


def test_a_misshapen_weight_is_a_config_error(checkpoint, tmp_path):
    folder = copy_checkpoint(checkpoint, "llama", tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["model.norm.weight"] = torch.ones(3)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ConfigError, match="model.norm.weight"):
        TorchModelBackend(EngineConfig(model=str(folder), device="cpu"))


def test_kv_cache_spec_counts_bytes_and_caps_blocks_on_cpu(checkpoint):
    config = EngineConfig(model=str(checkpoint("llama")), dtype="float32", device="cpu", block_size=16,
                          max_num_seqs=3, token_budget=64)
    spec = TorchModelBackend(config).kv_cache_spec(config)
    # k and v, 2 layers, 16 tokens, 2 KV heads of 16 dims, 4 bytes
    assert spec.bytes_per_block == 2 * 2 * 16 * 2 * 16 * 4
    assert spec.max_model_len == 1024 and spec.vocab_size == 256
    assert spec.num_blocks == 3 * 1024 // 16


def test_max_model_len_beyond_the_model_is_a_config_error(checkpoint):
    config = EngineConfig(model=str(checkpoint("llama")), device="cpu", max_model_len=4096)
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        TorchModelBackend(config).kv_cache_spec(config)
