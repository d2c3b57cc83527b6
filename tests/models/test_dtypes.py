"""bf16 parity within bf16 tolerance, and the dtype / device rules of the CPU."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.backend import TorchModelBackend
from sarathi_models.device import resolve_device, resolve_dtype
from sarathi_sdk import ConfigError, EngineConfig
from tests.models.conftest import ARCH_VARIANTS
from tests.models.helpers import RecordingSampler, load_reference, make_backend, run_steps

PROMPT = torch.randint(0, 256, (100,), generator=torch.Generator().manual_seed(3)).tolist()


@pytest.mark.parametrize("variant", ARCH_VARIANTS)
def test_bf16_logits_are_as_close_to_fp32_as_hf_bf16(variant, checkpoint, reference):
    """Chunked prefill then decodes in bf16: at every sampled position our error against the fp32
    reference stays within twice transformers' own bf16 error."""
    sampler = RecordingSampler()
    backend = make_backend(checkpoint(variant), dtype="bfloat16", sampler=sampler)
    assert backend.model.model.embed_tokens.weight.dtype == torch.bfloat16
    outputs, _ = run_steps(backend, [PROMPT], max_new_tokens=4, token_budget=7)
    sequence = torch.tensor([PROMPT + outputs[0][:-1]])
    with torch.no_grad():
        want = reference(variant)(sequence).logits[0, len(PROMPT) - 1 :]  # [4, V]
        hf_bf16 = load_reference(checkpoint(variant), torch.bfloat16)(sequence).logits[0, len(PROMPT) - 1 :].float()
    hf_error = (hf_bf16 - want).abs().max()
    our_error = (torch.stack(sampler.logits["r0"]) - want).abs().max()
    assert our_error <= max(2 * hf_error, 0.02), (our_error, hf_error)


def test_dtype_auto_is_bfloat16_on_cpu():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16


def test_float16_on_cpu_is_a_config_error(checkpoint):
    with pytest.raises(ConfigError, match="float16"):
        TorchModelBackend(EngineConfig(model=str(checkpoint("llama")), dtype="float16", device="cpu"))


def test_device_auto_is_cpu_without_a_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_device("cuda")


def test_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError):
        resolve_device("tpu0")
