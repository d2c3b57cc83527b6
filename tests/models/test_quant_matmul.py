"""`quant_matmul` (csrc/quant_matmul.cpp) against a float64 reference of its arithmetic: weights
`d * c + m` per group of 32 (8-bit codes also per half group of 16: GGUF Q6_K), activations quantized
per group of 32 to int8 (llama.cpp's Q8_1), at output sizes that leave a partial tile and row counts
that cross the kernel's 8-row passes."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.quant import pack_codes



def quantized_activations(x: torch.Tensor) -> torch.Tensor:
    """x [M, K] -> what the kernel multiplies: da * round(x * (1 / da)) per group of 32, da = amax / 127,
    in fp32 as the kernel computes it (ties must round alike), returned in float64."""
    groups = x.float().view(x.shape[0], -1, 32)  # [M, G, 32]
    da = groups.abs().amax(-1, keepdim=True) / 127  # [M, G, 1]
    inverse = torch.where(da > 0, 1 / da, torch.zeros_like(da))  # [M, G, 1]
    codes = (groups * inverse).round()  # [M, G, 32]
    return (codes.double() * da.double()).view(x.shape)  # [M, K] float64


FORMATS = [(4, 32), (5, 32), (8, 32), (6, 16), (8, 16)]
"""(code bits, inputs per scale): the kernel's five weight formats."""


def random_weight(n: int, k: int, bits: int, seed: int, group: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (n, k), generator=gen)  # [N, K]
    scale = ((torch.rand(n, k // group, generator=gen) - 0.2) * 0.02).half()  # [N, K / group], some < 0
    minimum = (-torch.rand(n, k // group, generator=gen) * 2**bits * 0.01).half()  # [N, K / group]
    return codes, scale, minimum


def dequantized(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    n, k = codes.shape
    w = codes.double().view(n, scale.shape[1], -1) * scale.double()[..., None] + minimum.double()[..., None]
    return w.view(n, k)  # [N, K] float64


@pytest.mark.parametrize(("bits", "group"), FORMATS)
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 19])
@pytest.mark.parametrize("n", [16, 40])
def test_fp32_output_is_the_quantized_arithmetic_in_float64(fused, bits, group, rows, n):
    codes, scale, minimum = random_weight(n, 96, bits, seed=rows * n + bits, group=group)
    x = torch.randn(rows, 96, generator=torch.Generator().manual_seed(rows))  # [M, K]
    got = pack_codes(codes, scale, minimum, bits, fused).matmul(x)  # [M, N] fp32
    want = quantized_activations(x) @ dequantized(codes, scale, minimum).T  # [M, N]
    magnitude = quantized_activations(x).abs() @ dequantized(codes, scale, minimum).abs().T
    assert got.shape == (rows, n) and got.dtype == torch.float32
    assert ((got.double() - want).abs() <= 1e-5 * magnitude + 1e-6).all()


@pytest.mark.parametrize("bits", [4, 5, 8])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bf16_output_is_the_fp32_result_rounded_and_int8_activations_cost_at_most_half_a_step(fused, bits, seed):
    codes, scale, minimum = random_weight(33, 64, bits, seed=7)
    weight = pack_codes(codes, scale, minimum, bits, fused)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(seed)).bfloat16()  # [M, K]
    w = dequantized(codes, scale, minimum)  # [N, K]
    got, fp32 = weight.matmul(x).double(), weight.matmul(x.float()).double()  # [M, N] each
    assert weight.matmul(x).dtype == torch.bfloat16
    assert ((got - fp32).abs() <= 2.0**-8 * fp32.abs()).all()
    # against the unquantized activations: each input moves by at most half its group's int8 step
    step = x.double().view(5, -1, 32).abs().amax(-1).repeat_interleave(32, dim=1) / 127  # [M, K]
    exact = x.double() @ w.T
    assert ((got - exact).abs() <= (step / 2) @ w.abs().T + 2.0**-8 * exact.abs() + 1e-6).all()


def test_zero_rows_and_zero_groups_give_zero(fused):
    codes, scale, minimum = random_weight(16, 64, 4, seed=1)
    x = torch.zeros(2, 64)
    x[1, 32:] = 1.0  # row 1: first group all zero, second group ones
    got = pack_codes(codes, scale, minimum, 4, fused).matmul(x)
    assert torch.equal(got[0], torch.zeros(16))
    want = dequantized(codes, scale, minimum)[:, 32:].sum(-1)
    assert torch.allclose(got[1].double(), want, rtol=1e-5, atol=1e-6)


def test_shapes_and_dtypes_are_checked_before_the_kernel_runs(fused):
    weight = pack_codes(*random_weight(16, 64, 4, seed=2), 4, fused)
    with pytest.raises(RuntimeError, match="multiple of 32"):
        fused.quant_matmul(torch.randn(2, 48), weight.codes, weight.scales, 16)
    with pytest.raises(RuntimeError, match="codes"):
        fused.quant_matmul(torch.randn(2, 96), weight.codes, weight.scales, 16)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        fused.quant_matmul(torch.randn(2, 64).half(), weight.codes, weight.scales, 16)


@pytest.mark.parametrize(("bits", "group"), FORMATS)
@pytest.mark.parametrize("rows", [1, 5, 8, 16])
def test_every_isa_level_computes_the_same_bits(bits, group, rows):
    """The avx512 (vpdpbusd), avx2 (vpmaddubsw + vpmaddwd) and portable builds take exact int32 group
    dot products and the same fp32 fma chain per output, so their logits agree bit for bit."""
    from sarathi_models.cpu_ops import kernels_for
    from tests.models.conftest import ISA_LEVELS

    codes, scale, minimum = random_weight(48, 128, bits, seed=bits * rows, group=group)
    x = torch.randn(rows, 128, generator=torch.Generator().manual_seed(rows)).bfloat16()  # [M, K]
    outputs = {}
    for level in ISA_LEVELS:
        module = kernels_for(level)
        if module is None:
            pytest.skip("no C++ compiler")
        weight = pack_codes(codes, scale, minimum, bits, module)
        outputs[level] = weight.matmul(x, float_out=True)  # [M, N] fp32
    first = outputs[ISA_LEVELS[0]]
    assert first.dtype == torch.float32
    assert all(torch.equal(first, out) for out in outputs.values()), list(outputs)


def test_float_out_gives_the_fp32_sums_a_bf16_output_rounds(fused):
    codes, scale, minimum = random_weight(40, 64, 8, seed=11)
    weight = pack_codes(codes, scale, minimum, 8, fused)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(3)).bfloat16()  # [M, K]
    exact = weight.matmul(x, float_out=True)  # [M, N] fp32
    assert exact.dtype == torch.float32 and weight.matmul(x).dtype == torch.bfloat16
    assert torch.equal(weight.matmul(x), exact.bfloat16())
    assert not torch.equal(exact, exact.bfloat16().float())  # fp32 keeps what bf16 rounds away
