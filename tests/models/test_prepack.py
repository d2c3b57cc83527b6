"""bf16 linear weights packed once into oneDNN's layout: the same bits as `F.linear`, on every layer of a
bf16 CPU model and of none other, with the plain copy released."""

from __future__ import annotations

import pytest
import torch

import sarathi_models.quantize_model
from sarathi_models.layers import Linear
from sarathi_models.prepack import can_prepack, prepack
from tests.models.conftest import ARCH_VARIANTS
from tests.models.helpers import RecordingSampler, make_backend, run_steps

pytestmark = pytest.mark.skipif(
    not can_prepack(torch.device("cpu"), torch.bfloat16), reason="oneDNN here does not run bf16"
)
PROMPTS = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (37, 90)]


@pytest.mark.parametrize("shape", [(960, 576), (3072, 576), (576, 1536), (100, 64), (33, 96)])
@pytest.mark.parametrize("rows", [1, 5, 16, 17, 64, 257])
def test_prepacked_products_are_the_bits_of_f_linear(shape, rows):
    generator = torch.Generator().manual_seed(rows)
    n, k = shape
    weight = torch.randn(n, k, generator=generator).bfloat16()  # [N, K]
    bias = torch.randn(n, generator=generator).bfloat16()  # [N]
    x = torch.randn(rows, 2 * k, generator=generator).bfloat16()[:, ::2]  # [rows, K], not contiguous
    packed = prepack(weight)
    assert torch.equal(packed.matmul(x, None), torch.nn.functional.linear(x, weight))
    assert torch.equal(packed.matmul(x, bias), torch.nn.functional.linear(x, weight, bias))
    assert torch.equal(packed.packed.to_dense(), weight)


def test_a_bf16_cpu_model_keeps_only_packed_linear_weights_and_an_fp32_one_only_plain(checkpoint):
    bf16 = [m for m in make_backend(checkpoint("qwen2"), dtype="bfloat16").model.modules() if isinstance(m, Linear)]
    assert bf16 and all(m.prepacked is not None and m.weight is None for m in bf16)
    fp32 = [m for m in make_backend(checkpoint("qwen2")).model.modules() if isinstance(m, Linear)]
    assert fp32 and all(m.prepacked is None and m.weight is not None for m in fp32)


@pytest.mark.parametrize("variant", ARCH_VARIANTS)
@pytest.mark.parametrize("quantization", ["none", "int4"])
def test_a_packed_model_samples_from_the_same_logits_as_a_plain_one(variant, quantization, checkpoint, monkeypatch):
    """Chunked prefills of 1-40 rows with decodes riding along, in bf16: every logit the same bits
    whether the layers' weights were packed or not (int4: steps of up to 16 rows take the quantized
    kernel either way, larger ones the packed or plain bf16 GEMM)."""

    def logits(pack: bool) -> dict[str, list[torch.Tensor]]:
        if not pack:
            monkeypatch.setattr(sarathi_models.quantize_model, "can_prepack", lambda device, dtype: False)
        sampler = RecordingSampler()
        backend = make_backend(checkpoint(variant), dtype="bfloat16", sampler=sampler, quantization=quantization)
        assert any(m.prepacked is not None for m in backend.model.modules() if isinstance(m, Linear)) == pack
        run_steps(backend, PROMPTS, max_new_tokens=6, token_budget=40)
        monkeypatch.undo()
        return sampler.logits

    packed, plain = logits(pack=True), logits(pack=False)
    assert packed.keys() == plain.keys()
    for request_id, rows in plain.items():
        assert all(torch.equal(a, b) for a, b in zip(packed[request_id], rows, strict=True)), request_id
