"""How the torch backend picks its CPU fast path, and that the eager fallback computes the same model."""

from __future__ import annotations

import pytest
import torch

import sarathi_models.layers
import sarathi_models.rope
from sarathi_models.cpu_attention import CpuAttention
from sarathi_models.cpu_ops import kernels
from sarathi_models.torch_attention import TorchAttention
from tests.models.helpers import make_backend, reference_greedy, run_steps

PROMPT = torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(5)).tolist()
needs_kernels = pytest.mark.skipif(kernels() is None, reason="the fused CPU kernels did not build here")


@needs_kernels
def test_auto_attention_is_the_cpu_backend_and_torch_stays_selectable(checkpoint):
    assert isinstance(make_backend(checkpoint("llama")).attention, CpuAttention)
    torch_backend = make_backend(checkpoint("llama"), attention_backend="torch")
    assert type(torch_backend.attention) is TorchAttention


@pytest.mark.parametrize("attention", ["torch", "cpu"])
@pytest.mark.parametrize("variant", ["llama", "mistral"])
def test_greedy_tokens_equal_hf_with_either_attention_backend(variant, attention, checkpoint, reference):
    if attention == "cpu" and kernels() is None:
        pytest.skip("the fused CPU kernels did not build here")
    backend = make_backend(checkpoint(variant), attention_backend=attention)
    outputs, _ = run_steps(backend, [PROMPT, PROMPT[:23]], max_new_tokens=12, token_budget=16)
    assert outputs[0] == reference_greedy(reference(variant), PROMPT, 12)
    assert outputs[1] == reference_greedy(reference(variant), PROMPT[:23], 12)


def test_without_the_fused_kernels_the_eager_ops_give_hf_greedy_tokens(checkpoint, reference, monkeypatch):
    """What a machine without a C++ compiler runs: every layer on its eager torch formula."""
    for module in (sarathi_models.layers, sarathi_models.rope):
        monkeypatch.setattr(module, "cpu_kernels", lambda x: None)
    backend = make_backend(checkpoint("qwen2"), attention_backend="torch")
    outputs, _ = run_steps(backend, [PROMPT], max_new_tokens=12, token_budget=16)
    assert outputs[0] == reference_greedy(reference("qwen2"), PROMPT, 12)
