"""Weight-only quantized matmuls for the CPU: grouped int4 and per-channel int8, kept beside the weights.

A decode step reads every weight for a handful of rows: its cost is bytes, so reading 4-bit weights
instead of bf16 ones makes small-batch steps about 3x cheaper. torch ships the kernels
(`_weight_int4pack_mm_for_cpu`, groups of 32 with a bf16 scale and zero each; `_weight_int8pack_mm`,
one bf16 scale per output channel). Measured on this project's 2-core Zen 4 machine (SmolLM2-135M
shapes, all 121 linear layers of a step, 2026-11-24, one thread / two threads):

    rows   bf16 (mkldnn)    int4            int8
    1      16.0 / 10.1 ms   7.6 / 4.3 ms    9.4 / 4.8 ms
    4      18.6 / 12.3 ms   13.1 / 7.7 ms   17.2 / 9.3 ms
    16     32.6 / 18.8 ms   51.1 / 25.8 ms  67.2 / 33.4 ms

In the engine the crossover is later than this table suggests: decode tok/s of the default model with
the int4 kernel up to 4 rows, against up to 16 (2 threads, one OpenMP team, 2026-11-30, two
alternations): batch 6 200 / 293, batch 8 256 / 358, batch 12 287-342 / 386, batch 16 348-416 /
405-407. So a quantized `Linear` keeps its bf16 weight as well and takes the quantized kernel for
steps of at most `QUANTIZED_MAX_ROWS` rows (decode-only steps of up to 16 sequences); prefill chunks
and larger steps run the bf16 GEMM, compute-bound, where the quantized kernels lose. The quantized kernels need bf16 activations: an fp32 model never
takes them (its int4 kernel is 50x slower than bf16 here) and stays exact.

The int4 form is the kernel's: `w = (q - 8) * scale + zero`, q in 0..15, per group of 32 along the
input dimension. GGUF's Q4_0 (`d * (q - 8)`) and Q4_1 (`d * q + m` = `d * (q - 8) + (m + 8 d)`) map
onto it without requantizing; the only change is the kernel's bf16 scale and zero where GGUF stores
fp16 (7 instead of 10 mantissa bits: a relative error of at most 2^-9 per scale and zero), and the
kernel rounding its dequantized weights to bf16: a weight moves by at most 2^-9 of
(16 |d| + |m + 8 d| + 2 |w|) (pinned by `tests/models/test_quantization.py`). GGUF's
Q8_0 (`d * q` per group of 32, which torch's per-channel int8 kernel cannot express) runs on the
project's own fused kernel with its fp16 scales kept exactly (1.8 ms for SmolLM2's 49152 x 576 tied
LM head at one row, against 3.5-6.4 ms in bf16).

Imports torch and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sarathi_sdk import ConfigError

GROUP_SIZE = 32
QUANTIZED_MAX_ROWS = 16
"""Steps with more rows than this run the bf16 GEMM (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Int4Weight:
    """A [N, K] weight as the CPU int4 kernel wants it."""

    packed: torch.Tensor
    """The kernel's packed layout of q [N, K] (uint8)."""
    scales_and_zeros: torch.Tensor
    """[K / 32, N, 2] bf16: per group of 32 inputs and per output, (scale, zero)."""

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] bf16 -> x @ w.T [M, N] bf16."""
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, GROUP_SIZE, self.scales_and_zeros)

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.scales_and_zeros.nbytes


@dataclass(frozen=True, slots=True)
class Int8Weight:
    """A [N, K] weight as int8 with one scale per output channel."""

    weight: torch.Tensor
    """[N, K] int8."""
    scales: torch.Tensor
    """[N] bf16."""

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] bf16 -> x @ w.T [M, N] bf16."""
        return torch.ops.aten._weight_int8pack_mm(x, self.weight, self.scales)

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.scales.nbytes


@dataclass(frozen=True, slots=True)
class Q80Weight:
    """A [N, K] weight in GGUF's Q8_0 form, for the fused CPU kernel `q8_0_matmul` (`cpu_ops`):
    torch's own int8 kernel takes one scale per output channel, Q8_0 has one per group of 32."""

    q: torch.Tensor
    """[N, K] int8."""
    scales: torch.Tensor
    """[N, K / 32] fp32 (GGUF's fp16 scales, exactly)."""
    kernels: object

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] bf16 -> x @ w.T [M, N] bf16."""
        return self.kernels.q8_0_matmul(x, self.q, self.scales)  # type: ignore[attr-defined]

    @property
    def nbytes(self) -> int:
        return self.q.nbytes + self.scales.nbytes


QuantizedWeight = Int4Weight | Int8Weight | Q80Weight


def pack_int4(q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> Int4Weight:
    """The weight `scale * q + minimum` as the kernel's int4 form.

    q [N, K] integers 0..15; scale, minimum [N, K / 32] float (GGUF Q4_1's d and m; Q4_0 is m = -8 d).
    """
    n, k = q.shape
    if k % GROUP_SIZE:
        raise ConfigError(f"int4 needs an input size that is a multiple of {GROUP_SIZE}, got {k}")
    scale32 = scale.float()  # [N, G]
    zero32 = minimum.float() + 8 * scale32  # [N, G]
    scales_and_zeros = torch.stack((scale32, zero32), dim=-1).transpose(0, 1).contiguous()  # [G, N, 2]
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
    return Int4Weight(packed=packed, scales_and_zeros=scales_and_zeros.to(torch.bfloat16))


def quantize_int4(weight: torch.Tensor) -> Int4Weight:
    """Round-to-nearest asymmetric int4 of a float weight [N, K], groups of 32 along K."""
    n, k = weight.shape
    if k % GROUP_SIZE:
        raise ConfigError(f"int4 needs an input size that is a multiple of {GROUP_SIZE}, got {k}")
    groups = weight.float().view(n, k // GROUP_SIZE, GROUP_SIZE)  # [N, G, 32]
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)  # [N, G]
    scale = ((high - low) / 15).clamp_min(1e-12)  # [N, G]
    q = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15)  # [N, G, 32]
    return pack_int4(q.view(n, k), scale, low)


def quantize_int8(weight: torch.Tensor) -> Int8Weight:
    """Round-to-nearest symmetric int8 of a float weight [N, K], one scale per output channel."""
    w = weight.float()  # [N, K]
    scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)  # [N]
    q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)  # [N, K]
    return Int8Weight(weight=q.contiguous(), scales=scale.to(torch.bfloat16))


def takes_quantized_kernel(x: torch.Tensor) -> bool:
    """Whether activations x [M, K] go through a quantized kernel: a few bf16 rows on the CPU."""
    return x.shape[0] <= QUANTIZED_MAX_ROWS and x.dtype == torch.bfloat16 and x.device.type == "cpu"
