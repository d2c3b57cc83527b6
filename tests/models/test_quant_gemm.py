"""`quant_gemm` (`csrc/quant_gemm_core.h`; the avx512, avx2 and neon builds): a prefill chunk times a
weight kept as tiled codes, with no bf16 copy of the weight. Held on every build this CPU runs, bit
for bit, to the same arithmetic written out in torch: the bf16 weight of `dequantize`, vdpbf16ps' fp32 steps over the input pairs in order (the odd
input's product added first, then the even one's: Zen 4's order, as `vec8.h` writes it), one bf16
rounding at the end."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.cpu_ops import kernels_for
from sarathi_models.quant import pack_codes
from tests.models.conftest import ISA_LEVELS
from tests.models.test_quant_matmul import random_weight


def dpbf16_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [M, K] bf16 @ w.T (w [N, K] bf16) as vdpbf16ps sums it, fp32, rounded to bf16: [M, N]."""
    x32, w32 = x.float(), w.float()
    acc = torch.zeros(x.shape[0], w.shape[0])  # [M, N] fp32
    for p in range(x.shape[1] // 2):
        acc = acc + x32[:, 2 * p + 1, None] * w32[None, :, 2 * p + 1]  # products of bf16 values: exact
        acc = acc + x32[:, 2 * p, None] * w32[None, :, 2 * p]
    return acc.bfloat16()


GEMM_LEVELS = [level for level in ISA_LEVELS if level != "portable"]
"""The portable build has no quant_gemm: it runs torch's GEMM on the dequantized weight."""


@pytest.fixture(scope="module", params=GEMM_LEVELS)
def gemm(request):
    module = kernels_for(request.param)
    if module is None:
        pytest.skip("no C++ compiler: the CPU kernels cannot be built")
    return module


def test_the_portable_build_has_none():
    module = kernels_for("portable")
    if module is None:
        pytest.skip("no C++ compiler: the CPU kernels cannot be built")
    assert not module.quant_gemm_supported()


@pytest.mark.parametrize(("bits", "group"), [(4, 32), (5, 32), (8, 32), (6, 16), (8, 16)])
@pytest.mark.parametrize(("m", "n", "k"), [(37, 40, 96), (8, 64, 64), (17, 16, 32), (3, 200, 128)])
def test_the_product_is_vdpbf16ps_sums_of_the_dequantized_weight(gemm, bits, group, m, n, k):
    codes, scale, minimum = random_weight(n, k, bits, seed=m + n + k + bits, group=group)
    weight = pack_codes(codes, scale, minimum, bits, gemm)
    x = (torch.randn(m, k) * 2).bfloat16()  # [M, K]
    assert torch.equal(weight.gemm(x), dpbf16_reference(x, weight.dequantize()))


def test_inputs_that_do_not_fit_the_weight_are_refused(gemm):
    weight = pack_codes(*random_weight(16, 64, 4, seed=1), 4, gemm)
    with pytest.raises(RuntimeError, match="inputs but the codes hold"):
        gemm.quant_gemm(torch.randn(20, 96).bfloat16(), weight.codes, weight.scales, 16)
    with pytest.raises(RuntimeError, match="bfloat16"):
        gemm.quant_gemm(torch.randn(20, 64), weight.codes, weight.scales, 16)
