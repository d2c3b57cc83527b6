"""Weight-only quantized matmuls for the CPU, for steps of few rows.

A decode step reads every weight for a handful of rows: its cost is bytes, so reading 4-bit weights
instead of bf16 ones makes small steps several times cheaper, if the kernel keeps up with memory.

- `PackedWeight` (the CPU kernels' `quant_matmul`, `csrc/quant_matmul.cpp`): 4- or 8-bit unsigned codes
  with an fp16 scale and minimum per group of 32 inputs, times activations quantized to int8 per group
  of 32, multiplied as bytes with AVX-512 VNNI or AVX2 (the same bits on every ISA level): llama.cpp's
  Q4_1 x Q8_1 arithmetic. GGUF's Q4_0, Q4_1
  and Q8_0 map onto it exactly, fp16 scales included; the one rounding is the activation's int8 code.
- `Int4Weight` (torch's `_weight_int4pack_mm_for_cpu`) where the CPU kernels did not build: it widens
  the weights to bf16 first (bf16 scales, so GGUF's fp16 ones move by up to 2^-9).
- `Int8Weight` (torch's `_weight_int8pack_mm`), one scale per output channel, for `quantization="int8"`.

Measured on this project's 2-core Zen 4 machine (2026-11-30, 2 threads, bf16 activations, weights
resident in L3, microseconds per call; `quant_matmul` 4-bit / torch int4 / bf16 GEMM):

    shape (N x K)      1 row               4 rows              16 rows
    960 x 576          10 / 42 / 66        23 / 78 / 81        74 / 147 / 103
    3072 x 576         12 / 52 / 101       28 / 88 / 116       100 / 336 / 210
    576 x 1536         7 / 30 / 56         17 / 50 / 63        58 / 169 / 114
    49152 x 576        160 / 765 / 3259    394 / 1372 / 3720   1781 / 5451 / 5362

In a batch-1 decode step of SmolLM2-135M the 120 layer matmuls read their 66 MB at 29 GB/s, the
machine's read bandwidth (torch's int4: 17 GB/s). With many rows the int8 products still win on
time: one layer's four matmuls (960, 576, 3072 and 576 outputs) against the bf16 GEMM:

    rows            16     32     64     128    256    512
    quant_matmul    0.53x  0.64x  0.70x  0.78x  0.85x  0.85x   (of the bf16 GEMM's time)

but not on accuracy: with whole prompts prefilled on int8 activations the default model answered
"What is the capital of France?" with "L'Etoile, la Marseillaise, ..." (the first token's rows carry
outliers that a group's int8 step blurs, and every later token attends to them). A prompt's last
chunk alone is enough: at `token_budget` 32 the chat prompt's three-token last chunk on int8 gave the
same answer (2026-12-07). So a quantized `Linear` takes its kernel for decode passes of at most
`QUANTIZED_MAX_ROWS` rows, and a pass that carries prefill tokens (`prefill_pass`), whatever its
size, runs the bf16 GEMM, as larger steps do: on the bf16 values of a `PackedWeight` when it is the layer's only copy (a weight stored
quantized: `PackedWeight.gemm`, which dequantizes tiles into cache inside the product, or on the
portable build the whole weight for torch's GEMM; the values are exactly those a dense load of the
file gives, but for the K-quants' fp16 scales), else on the bf16 weight kept beside (packed for
oneDNN: see `prepack`). The quantized kernels need bf16 activations: an fp32 model is never
quantized and stays exact.

Imports torch, this package's CPU kernels and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from sarathi_sdk import ConfigError

from .cpu_ops import kernels

GROUP_SIZE = 32
TILE = 16
"""Output rows per tile of `PackedWeight`'s layout: one per 32-bit lane of a 512-bit register."""
QUANTIZED_MAX_ROWS = 16
"""Steps of more rows run the bf16 GEMM (see the module docstring)."""
PACK_CODES = 1 << 20
"""`pack_rows` reads and lays out about this many codes at a time (whole tiles, at least one): its
temporaries, several bytes a code, stay a few MB whatever the input size. At 1,024 rows a part, a
Q4_K_M file of a 2,048-wide Llama (inputs of 5,632 for `down_proj`) peaked 80 MB above its loaded size
(2026-12-07)."""


@dataclass(frozen=True, slots=True)
class Int4Weight:
    """A [N, K] weight as torch's CPU int4 kernel wants it."""

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
class PackedWeight:
    """A [N, K] weight as 4-, 5-, 6- or 8-bit codes for the CPU kernels' `quant_matmul` (see `pack_codes`)."""

    codes: torch.Tensor
    """[ceil(N / 16), K / 32, bits, 64] uint8, see `pack_codes`."""
    scales: torch.Tensor
    """[ceil(N / 16), K / 32, 2, 16] fp16: per tile and group, the 16 rows' scales, then minimums; or
    [.., 4, 16] with a scale and minimum per half group (8-bit codes only, see `pack_codes`)."""
    out_features: int
    kernels: object

    def matmul(self, x: torch.Tensor, float_out: bool = False) -> torch.Tensor:
        """x [M, K] bf16 -> x @ w.T [M, N] bf16, or fp32 with `float_out` (the LM head's logits)."""
        return self.kernels.quant_matmul(x, self.codes, self.scales, self.out_features,  # type: ignore[attr-defined]
                                         float_out)

    def gemm(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] bf16 -> x @ w.T [M, N] bf16 for many rows, bf16 products of the dequantized weight
        (`quant_gemm`, see `csrc/quant_gemm_core.h`: the same bits on the avx512, avx2 and neon builds;
        the portable one dequantizes the whole weight for torch's GEMM)."""
        if self.kernels.quant_gemm_supported():  # type: ignore[attr-defined]
            return self.kernels.quant_gemm(x, self.codes, self.scales, self.out_features)  # type: ignore[attr-defined]
        return torch.nn.functional.linear(x, self.dequantize())

    def dequantize(self) -> torch.Tensor:
        """The weight as bf16 [N, K] (a transposed view of a fresh [K, N] tensor: see
        `csrc/dequant_core.h`): what `gemm` multiplies, whole on the portable build."""
        k = self.codes.shape[1] * GROUP_SIZE
        transposed = torch.empty(k, self.out_features, dtype=torch.bfloat16)  # [K, N]
        self.kernels.dequantize_transposed(self.codes, self.scales, self.out_features, transposed)  # type: ignore[attr-defined]
        return transposed.t()  # [N, K]

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows `ids` [R] of the weight as bf16 [R, K]: an embedding lookup."""
        return self.kernels.dequantize_rows(self.codes, self.scales, self.out_features, ids)  # type: ignore[attr-defined]

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes


QuantizedWeight = Int4Weight | Int8Weight | PackedWeight


def pack_int4(q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> Int4Weight | PackedWeight:
    """The weight `scale * q + minimum` for the fastest 4-bit kernel here: `quant_matmul` when the CPU
    kernels built, else torch's. q [N, K] integers 0..15; scale, minimum [N, K / 32] float (GGUF Q4_1's
    d and m; Q4_0 is m = -8 d)."""
    _check_groups(q.shape[1])
    fused = kernels()
    if fused is not None:
        return pack_codes(q, scale, minimum, bits=4, fused=fused)
    return torch_int4(q, scale, minimum)


def torch_int4(q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> Int4Weight:
    """torch's form of `scale * q + minimum`: `(q - 8) * scale + zero` with zero = minimum + 8 scale."""
    scale32 = scale.float()  # [N, G]
    zero32 = minimum.float() + 8 * scale32  # [N, G]
    scales_and_zeros = torch.stack((scale32, zero32), dim=-1).transpose(0, 1).contiguous()  # [G, N, 2]
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
    return Int4Weight(packed=packed, scales_and_zeros=scales_and_zeros.to(torch.bfloat16))


RowReader = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""(start, stop) -> codes [stop - start, K] and scale, minimum [stop - start, K / 32 or K / 16]: rows of
a weight read when `pack_rows` asks for them."""


def pack_codes(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, bits: int, fused: object) -> PackedWeight:
    """codes [N, K] (unsigned, < 2^bits), scale and minimum [N, K / 32] in `quant_matmul`'s layout:
    output rows in tiles of 16 (the last one padded with zero codes and scales), scales in fp16.
    With 6- or 8-bit codes, scale and minimum may be [N, K / 16] instead, one per half group (GGUF
    Q6_K; 6-bit codes need them).

    4-bit: chunk s (0..3) of a tile's group holds inputs 4s..4s+3 of each row in its low nibbles and
    4(s+4)..4(s+4)+3 in its high ones; 5- and 6-bit: the same for the codes' low four bits, then a
    chunk of their fifth bits (and one of their sixth), 8 bytes for each s of 0..7 (bit 4 i + j: input
    4s + j of row i); 8-bit: chunk s (0..7) holds inputs 4s..4s+3 as bytes.
    """
    n, k = codes.shape
    return pack_rows(n, k, scale.shape[1], lambda a, b: (codes[a:b], scale[a:b], minimum[a:b]), bits, fused)


def pack_rows(n: int, k: int, scale_width: int, read: RowReader, bits: int, fused: object) -> PackedWeight:
    """`pack_codes` of a weight [N, K] read about `PACK_CODES` codes (whole tiles of rows) at a time from
    `read`, so that beside the packed weight only those rows' codes are ever held (a GGUF file's 28 MB
    embedding as one byte a code raised the default model's load peak by that much)."""
    tiles, groups = -(-n // TILE), k // GROUP_SIZE
    halves = scale_width == 2 * groups and bits >= 6  # per half group: d, m of inputs 0-15, then of 16-31
    tiled = torch.empty(tiles, groups, bits, 4 * TILE, dtype=torch.uint8)  # [T, G, bits, 64]
    scales = torch.empty(tiles, groups, 4 if halves else 2, TILE, dtype=torch.float16)  # [T, G, 2 or 4, 16]
    bit_shifts = torch.arange(8, dtype=torch.uint8)  # [8]
    tiles_per_part = max(1, PACK_CODES // (TILE * k))
    for first in range(0, tiles, tiles_per_part):  # in parts: no temporary as large as the weight
        last = min(tiles, first + tiles_per_part)
        count = last - first
        codes, scale, minimum = read(first * TILE, min(n, last * TILE))  # [r, K], [r, G or 2G] x 2
        padded = _padded_rows(codes.to(torch.uint8), count)  # [t * 16, K]
        quads = padded.view(count, TILE, groups, 8, 4).permute(0, 2, 3, 1, 4)  # [t, G, quad, lane, j]
        if bits == 8:
            tiled[first:last] = quads.reshape(count, groups, 8, 4 * TILE)
        else:
            low = quads & 0x0F  # [t, G, 8, lane, j]
            tiled[first:last, :, :4] = (low[:, :, :4] | (low[:, :, 4:] << 4)).reshape(count, groups, 4, 4 * TILE)
            for plane in range(bits - 4):  # bit 4 + plane of every code
                bit = ((quads >> (4 + plane)) & 1).reshape(count, groups, 8, 8, 8) << bit_shifts  # [t, G, s, byte, bit]
                tiled[first:last, :, 4 + plane] = bit.sum(-1, dtype=torch.uint8).reshape(count, groups, 4 * TILE)
        parts = [v[:, half::2] for half in (0, 1) for v in (scale, minimum)] if halves else [scale, minimum]
        for i, values in enumerate(parts):  # [r, G] each -> [t, G, 16]
            per_lane = _padded_rows(values.to(torch.float16), last - first)  # [t * 16, G]
            scales[first:last, :, i] = per_lane.view(last - first, TILE, -1).transpose(1, 2)
    return PackedWeight(codes=tiled, scales=scales, out_features=n, kernels=fused)


def _padded_rows(values: torch.Tensor, tiles: int) -> torch.Tensor:
    """values [r, C] with zero rows appended up to `tiles` whole tiles: [tiles * 16, C]."""
    return torch.nn.functional.pad(values, (0, 0, 0, tiles * TILE - values.shape[0]))


def _check_groups(k: int) -> None:
    if k % GROUP_SIZE:
        raise ConfigError(f"quantized weights need an input size that is a multiple of {GROUP_SIZE}, got {k}")


def quantize_int4(weight: torch.Tensor) -> Int4Weight | PackedWeight:
    """Round-to-nearest asymmetric int4 of a float weight [N, K], groups of 32 along K; the scale and
    minimum are rounded to fp16 first (as GGUF stores them), so the codes fit the stored values."""
    n, k = weight.shape
    _check_groups(k)
    groups = weight.float().view(n, k // GROUP_SIZE, GROUP_SIZE)  # [N, G, 32]
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)  # [N, G]
    low = low.half().float()  # [N, G]
    scale = ((high - low) / 15).clamp_min(2.0**-14).half().float()  # [N, G], a normal fp16
    q = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15)  # [N, G, 32]
    return pack_int4(q.view(n, k), scale, low)


def quantize_int8(weight: torch.Tensor) -> Int8Weight:
    """Round-to-nearest symmetric int8 of a float weight [N, K], one scale per output channel."""
    w = weight.float()  # [N, K]
    scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)  # [N]
    q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)  # [N, K]
    return Int8Weight(weight=q.contiguous(), scales=scale.to(torch.bfloat16))


_PREFILL_PASS: ContextVar[bool] = ContextVar("sarathi_prefill_pass", default=False)
"""Whether the pass running in this thread carries prefill tokens (`prefill_pass`)."""


@contextmanager
def prefill_pass(carries_prefill: bool) -> Iterator[None]:
    """Within it, when `carries_prefill`, no `Linear` takes the int8 kernel (see the module docstring).
    The model's layers run inside it; a context variable, because a `Linear` sees only its rows, and
    each worker thread runs its own pass."""
    token = _PREFILL_PASS.set(carries_prefill)
    try:
        yield
    finally:
        _PREFILL_PASS.reset(token)


def takes_quantized_kernel(x: torch.Tensor) -> bool:
    """Whether activations x [M, K] go through a quantized kernel: at most `QUANTIZED_MAX_ROWS` bf16 rows
    on the CPU outside a prefill pass (see the module docstring); other steps run the bf16 GEMM."""
    return (not _PREFILL_PASS.get() and x.shape[0] <= QUANTIZED_MAX_ROWS and x.dtype == torch.bfloat16
            and x.device.type == "cpu")
