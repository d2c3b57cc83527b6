"""A `PackedWeight` turned back into bf16 (`csrc/dequant_core.h`): whole, for the steps too large for the
quantized matmul, and by rows, for embedding lookups. Every value is `scale * code + minimum` rounded
to bf16 once, on every ISA level; a `Linear` whose codes are its only copy multiplies large steps with
exactly those values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sarathi_models.layers import Embedding, Linear
from sarathi_models.quant import pack_codes
from tests.models.test_quant_matmul import random_weight

FORMATS = [(4, 32), (5, 32), (8, 32), (6, 16), (8, 16)]
"""(code bits, inputs per scale): the kernels' 4-, 5- and 8-bit forms and the 6- and 8-bit ones with
half-group scales."""


def reference(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """scale * code + minimum, in float64 (exact here), rounded to bf16: [N, K]."""
    group = codes.shape[1] // scale.shape[1]
    w = codes.double() * scale.double().repeat_interleave(group, 1) + minimum.double().repeat_interleave(group, 1)
    return w.bfloat16()


@pytest.mark.parametrize(("bits", "group"), FORMATS)
@pytest.mark.parametrize(("n", "k"), [(40, 96), (960, 576), (16, 32)])
def test_the_whole_weight_and_any_rows_are_exact(fused, bits, group, n, k):
    codes, scale, minimum = random_weight(n, k, bits, seed=n + k + bits, group=group)
    weight = pack_codes(codes, scale, minimum, bits, fused)
    want = reference(codes, scale, minimum)  # [N, K]
    assert torch.equal(weight.dequantize(), want)
    ids = torch.tensor([n - 1, 0, n // 2, 0])
    assert torch.equal(weight.rows(ids), want[ids])


def test_row_ids_out_of_range_are_refused(fused):
    weight = pack_codes(*random_weight(40, 64, 4, seed=1), 4, fused)
    with pytest.raises(RuntimeError, match="row ids"):
        weight.rows(torch.tensor([40]))
    with pytest.raises(RuntimeError, match="row ids"):
        weight.rows(torch.tensor([-1]))


def test_a_linear_without_a_dense_weight_multiplies_large_steps_with_the_dequantized_one(fused):
    codes, scale, minimum = random_weight(96, 128, 8, seed=3, group=16)
    layer = Linear(128, 96)
    layer.quantized = pack_codes(codes, scale, minimum, 8, fused)
    layer.weight = None
    x = torch.randn(40, 128).bfloat16()  # [T, K]: more rows than the quantized kernel takes
    want = F.linear(x, reference(codes, scale, minimum))
    if fused.quant_gemm_supported():  # the fused GEMM: its own fp32 sums, bf16 once (test_quant_gemm)
        assert torch.equal(layer(x), layer.quantized.gemm(x))
        torch.testing.assert_close(layer(x), want, rtol=2**-7, atol=1e-3)
    else:
        assert torch.equal(layer(x), want)


def test_an_embedding_without_a_dense_weight_looks_rows_up_in_the_codes(fused):
    codes, scale, minimum = random_weight(50, 64, 8, seed=4)
    embedding = Embedding(50, 64)
    embedding.quantized = pack_codes(codes, scale, minimum, 8, fused)
    embedding.weight = None
    ids = torch.tensor([3, 49, 3, 0])
    assert torch.equal(embedding(ids), reference(codes, scale, minimum)[ids])
