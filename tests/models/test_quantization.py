"""Quantized weights: GGUF blocks kept as stored reproduce `gguf.quants.dequantize`, through the
project's packed kernel (up to the bf16 output's rounding) and torch's int4 kernel (within its
documented bf16 rounding), and the loader attaches them as `quantization` asks."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from sarathi_models.cpu_ops import kernels
from sarathi_models.gguf_blocks import fast_blocks, split_q4_blocks
from sarathi_models.layers import Linear
from sarathi_models.quant import PackedWeight, pack_codes, quantize_int4, quantize_int8, torch_int4
from sarathi_sdk import ConfigError, EngineConfig
from tests.models.helpers import make_backend

Q = gguf.GGMLQuantizationType
WEIGHT = np.random.default_rng(0).standard_normal((48, 128)).astype(np.float32) * 0.2  # [N, K]


needs_kernels = pytest.mark.skipif(kernels() is None, reason="the fused CPU kernels did not build here")
EYE = torch.eye(128, dtype=torch.bfloat16)
"""x = I recovers the weights: a one-hot group quantizes to int8 exactly (code 127, scale 1/127)."""


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1])
def test_torch_int4_kernel_reproduces_gguf_weights_within_bf16_scale_rounding(qtype):
    """torch's kernel keeps d and m + 8d in bf16 and rounds (q - 8) * d, the weight and its output to
    bf16: each rounding moves a value by at most 2^-9 of itself, so a weight may move by 2^-9 of
    (16 |d| + |m + 8d| + 2 |w|), and no more."""
    raw = gguf.quants.quantize(WEIGHT, qtype)
    q, scale, minimum = split_q4_blocks(raw, has_min=qtype == Q.Q4_1)
    packed = torch_int4(torch.from_numpy(q.astype(np.int32)), torch.from_numpy(scale), torch.from_numpy(minimum))
    got = packed.matmul(EYE).float().T  # [N, K]: the weights back
    want = torch.from_numpy(gguf.quants.dequantize(raw, qtype))  # [N, K]
    d = torch.from_numpy(scale.astype(np.float32)).repeat_interleave(32, dim=1)  # [N, K]
    zero = torch.from_numpy(minimum.astype(np.float32)).repeat_interleave(32, dim=1) + 8 * d
    bound = 2.0**-9 * (16 * d.abs() + zero.abs() + 2 * want.abs()) + 1e-7
    assert ((got - want).abs() <= bound).all()
    assert (got - want).abs().max() > 0  # the rounding is real: the bound above is what is tested


@needs_kernels
@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0], ids=lambda q: q.name)
def test_packed_kernel_reproduces_gguf_weights_up_to_the_bf16_output(qtype):
    """fp16 scales kept as stored, codes exact: only the bf16 output rounds (by 2^-8 of the weight)."""
    raw = gguf.quants.quantize(WEIGHT, qtype)
    blocks = fast_blocks(raw, qtype)
    packed = pack_codes(torch.from_numpy(blocks.codes), torch.from_numpy(blocks.scale),
                        torch.from_numpy(blocks.minimum), bits=blocks.bits, fused=kernels())
    assert isinstance(packed, PackedWeight)
    got = packed.matmul(EYE).float().T  # [N, K]
    want = torch.from_numpy(gguf.quants.dequantize(raw, qtype))  # [N, K]
    assert ((got - want).abs() <= 2.0**-8 * want.abs() + 1e-7).all()
    assert torch.allclose(packed.matmul(EYE.float()).T, want, rtol=2.0**-20, atol=1e-7)  # fp32: to its rounding


def test_rtn_int4_and_int8_stay_within_half_a_step_and_the_bf16_rounding():
    w = torch.from_numpy(WEIGHT)  # [N, K]
    eye = torch.eye(128, dtype=torch.bfloat16)
    int4 = quantize_int4(w).matmul(eye).float().T  # [N, K]
    step4 = (w.view(48, 4, 32).amax(-1) - w.view(48, 4, 32).amin(-1)).repeat_interleave(32, dim=1) / 15
    assert ((int4 - w).abs() <= step4 / 2 + 2.0**-8 * w.abs().amax()).all()
    int8 = quantize_int8(w).matmul(eye).float().T
    step8 = w.abs().amax(dim=1, keepdim=True) / 127  # [N, 1]
    # half a step, plus the bf16 scale's rounding times up to 127 steps, plus the bf16 output's
    assert ((int8 - w).abs() <= step8 / 2 + 127 * 2.0**-9 * step8 + 2.0**-8 * w.abs()).all()


def test_int4_and_int8_requantize_every_linear_layer_in_bf16(checkpoint):
    folder = checkpoint("llama")
    for mode in ("int4", "int8"):
        backend = make_backend(folder, dtype="bfloat16", quantization=mode)
        layers = [m for m in backend.model.modules() if isinstance(m, Linear)]
        assert layers and all(m.quantized is not None for m in layers)
    assert make_backend(folder, dtype="bfloat16", quantization="none").num_quantized_layers == 0
    assert make_backend(folder, dtype="bfloat16").num_quantized_layers == 0  # "auto": nothing stored


def test_quantization_is_refused_where_no_kernel_runs(checkpoint):
    with pytest.raises(ConfigError, match="bfloat16"):
        make_backend(checkpoint("llama"), dtype="float32", quantization="int4")
    with pytest.raises(ConfigError, match="quantization"):
        EngineConfig(quantization="int3")


@needs_kernels
def test_steps_of_up_to_16_rows_take_the_quantized_kernel_and_larger_ones_the_bf16_gemm():
    from sarathi_models.layers import Linear

    linear = Linear(128, 48)
    linear.weight.data.copy_(torch.from_numpy(WEIGHT))
    linear = linear.to(torch.bfloat16)
    linear.quantized = quantize_int4(torch.from_numpy(WEIGHT))
    small, large = torch.randn(16, 128).bfloat16(), torch.randn(17, 128).bfloat16()
    assert torch.equal(linear(small), linear.quantized.matmul(small))
    assert torch.equal(linear(large), torch.nn.functional.linear(large, linear.weight))
    assert not torch.equal(linear(small), torch.nn.functional.linear(small, linear.weight))
