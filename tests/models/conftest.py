"""Tiny checkpoints of every supported architecture, saved once per session, and their HF references."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sarathi_models.cpu_isa import runnable_levels
from sarathi_models.cpu_ops import kernels_for
from tests.models.helpers import load_reference, save_tiny

ISA_LEVELS = [level.name for level in runnable_levels()]
"""Every build of the CPU kernels this CPU can execute (avx512, avx2, portable on a Zen 4): kernel
tests run against each, so one machine checks the code paths of the CPUs it is not."""


@pytest.fixture(scope="session", params=ISA_LEVELS)
def fused(request):
    """The CPU kernels built for one ISA level (a build of its own, cached across runs)."""
    module = kernels_for(request.param)
    if module is None:
        pytest.skip("no C++ compiler: the CPU kernels cannot be built")
    return module

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

VARIANTS = {
    # Grouped-query attention, untied head.
    "llama": ("LlamaForCausalLM", {}),
    # Every layer windowed, the window much shorter than the prompts.
    "mistral": ("MistralForCausalLM", {"sliding_window": 16}),
    # qkv bias; layer 0 full attention, layer 1 windowed.
    "qwen2": ("Qwen2ForCausalLM", {"use_sliding_window": True, "sliding_window": 16, "max_window_layers": 1}),
    # Tied embeddings, Llama-3 RoPE scaling, one KV head, biases everywhere, sharded safetensors.
    "llama3": (
        "LlamaForCausalLM",
        {
            "tie_word_embeddings": True,
            "rope_parameters": LLAMA3_ROPE,
            "num_key_value_heads": 1,
            "attention_bias": True,
            "mlp_bias": True,
            "max_shard_size": "40KB",
        },
    ),
    # Q and K normalized per head before rope; head_dim 32 where hidden / heads is 16; tied head.
    "qwen3": ("Qwen3ForCausalLM", {"head_dim": 32, "tie_word_embeddings": True}),
    # q/k/v and gate/up stored fused; a sliding window on every layer (pad id inside the tiny vocabulary).
    "phi3": ("Phi3ForCausalLM", {"sliding_window": 16, "pad_token_id": 0}),
    # Sandwich norms, GeGLU, scaled embeddings, attention and final logits soft-capped (caps low enough
    # to bite at these weights), layers 0 and 2 windowed, query_pre_attn_scalar != head_dim.
    "gemma2": ("Gemma2ForCausalLM", {"num_hidden_layers": 3, "head_dim": 32, "sliding_window": 16,
                                     "query_pre_attn_scalar": 24, "attn_logit_softcapping": 3.0,
                                     "final_logit_softcapping": 5.0, "pad_token_id": 0}),
    # Q/K norms; five layers of six windowed, those rotating with a base of their own, the sixth with
    # linearly scaled RoPE of another base; an LM head of its own (Gemma's are tied, a file may not be).
    "gemma3": ("Gemma3ForCausalLM", {"num_hidden_layers": 6, "sliding_window": 16, "query_pre_attn_scalar": 16,
                                     "tie_word_embeddings": False,
                                     "rope_parameters": {
                                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                         "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                            "rope_theta": 100000.0}},
                                     "pad_token_id": 0}),
}
ARCH_VARIANTS = ("llama", "mistral", "qwen2", "llama3", "qwen3", "phi3", "gemma2", "gemma3")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """checkpoint(name) -> the folder of variant `name`, saved on first use."""
    root = tmp_path_factory.mktemp("checkpoints")
    saved: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in saved:
            architecture, overrides = VARIANTS[name]
            overrides = dict(overrides)
            shard = overrides.pop("max_shard_size", None)
            saved[name] = save_tiny(root / name, architecture, max_shard_size=shard, **overrides)
        return saved[name]

    return get


@pytest.fixture(scope="session")
def reference(checkpoint):
    """reference(name) -> the fp32 transformers model of variant `name`, loaded once."""
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_reference(checkpoint(name))
        return loaded[name]

    return get


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine a spinning second
    OpenMP thread makes each of thousands of small steps wait on a descheduled peer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
