"""GGML's block formats read into the form the quantized kernels multiply (`quant.pack_codes`): per
group of 32 inputs of an output row, unsigned codes with one fp16 scale and one fp16 minimum, the
weight being `scale * code + minimum`.

- Q4_0, Q4_1: 4-bit codes; Q4_0's minimum is -8 d (exact in fp16).
- Q5_0, Q5_1: 5-bit codes (the fifth bit from the block's 32-bit `qh`), on the 5-bit path; Q5_0's
  minimum is -16 d.
- Q8_0: signed bytes q as codes q + 128, minimum -128 d, on the 8-bit path.
- Q4_K, Q5_K: super-blocks of 256 weights, 8 sub-blocks of 32 with 6-bit scales sc and minimums m
  packed in 12 bytes under fp16 super-scales d and dmin; the weight is d sc q - dmin m. The
  sub-block is the kernels' group, with scale d sc and minimum -dmin m rounded to fp16: a relative
  error of at most 2^-11 in each (the codes' own step is 1/15 or 1/31 of the range).
- Q6_K: super-blocks of 256 weights, 16 sub-blocks of 16 with int8 scales sc under an fp16 d; the
  weight is d sc (q - 32), q 6 bits. Codes q on the 6-bit path with a scale d sc (rounded to fp16,
  as above) and minimum -32 d sc per half group: `scale` and `minimum` are [N, K / 16].

The K-quants' fp16 rounding of d x sc is the one place where the kernels' weight differs from the
file's. Every other type (Q2_K, Q3_K, the IQ types, floats) is not here: `FAST_TYPES` says which are.
Imports numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gguf_types import GGMLType as Q

FAST_TYPES = frozenset({Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K})
FOUR_BIT_TYPES = frozenset({Q.Q4_0, Q.Q4_1, Q.Q4_K})
"""The fast types on the kernels' 4-bit path."""
FIVE_BIT_TYPES = frozenset({Q.Q5_0, Q.Q5_1, Q.Q5_K})
"""The fast types on the kernels' 5-bit path; Q6_K takes the 6-bit one (scales per half group), Q8_0 the
8-bit one."""


@dataclass(frozen=True, slots=True)
class FastBlocks:
    """A [N, K] weight as the kernels take it."""

    codes: np.ndarray
    """[N, K] uint8, each below 2^bits."""
    bits: int
    """4, 5, 6 or 8: the kernels' path."""
    scale: np.ndarray
    """[N, K / 32] fp16, or [N, K / 16] (a scale per half group: Q6_K)."""
    minimum: np.ndarray
    """As `scale`."""


def fast_blocks(raw: np.ndarray, qtype: Q) -> FastBlocks:
    """A tensor's blocks as stored, [N, bytes per row] uint8, read for the kernels."""
    if qtype in (Q.Q4_0, Q.Q4_1):
        q, scale, minimum = split_q4_blocks(raw, has_min=qtype == Q.Q4_1)
        return FastBlocks(q, 4, scale, minimum)
    if qtype in (Q.Q5_0, Q.Q5_1):
        return _q5_blocks(raw, has_min=qtype == Q.Q5_1)
    if qtype == Q.Q8_0:
        q, scale = split_q8_0_blocks(raw)
        codes = q.view(np.uint8) ^ 0x80  # q + 128, without a wider temporary
        return FastBlocks(codes, 8, scale, (-128 * scale.astype(np.float32)).astype(np.float16))
    if qtype in (Q.Q4_K, Q.Q5_K):
        return _k_blocks(raw, fifth_bit=qtype == Q.Q5_K)
    if qtype == Q.Q6_K:
        return _q6_k_blocks(raw)
    raise ValueError(f"{qtype.name} blocks have no fast path; types that do: {sorted(t.name for t in FAST_TYPES)}")


def split_q4_blocks(raw: np.ndarray, has_min: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GGML Q4 blocks [N, bytes per row] -> q uint8 [N, K], scale and min fp16 [N, K/32].

    A block of 32 weights is d (fp16), for Q4_1 then m (fp16), then 16 bytes whose low nibbles are
    weights 0..15 and high nibbles weights 16..31.
    """
    header = 4 if has_min else 2
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, header + 16)  # [N, G, block bytes]
    scale = blocks[..., 0:2].copy().view(np.float16)[..., 0]  # [N, G]
    minimum = blocks[..., 2:4].copy().view(np.float16)[..., 0] if has_min else -8 * scale  # [N, G]
    nibbles = blocks[..., header:]  # [N, G, 16]
    q = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=-1)  # [N, G, 32]
    return q.reshape(rows, -1), scale, minimum.astype(np.float16)


def split_q8_0_blocks(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GGML Q8_0 blocks [N, bytes per row] -> q int8 [N, K], scale fp16 [N, K/32].

    A block of 32 weights is d (fp16) then 32 signed bytes.
    """
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, 34)  # [N, G, 34]
    scale = blocks[..., 0:2].copy().view(np.float16)[..., 0]  # [N, G]
    q = blocks[..., 2:].copy().view(np.int8)  # [N, G, 32]
    return q.reshape(rows, -1), scale


def _q5_blocks(raw: np.ndarray, has_min: bool) -> FastBlocks:
    """Q5_0 / Q5_1: d (fp16), for Q5_1 m (fp16), qh (4 bytes: bit j is weight j's fifth bit), then 16
    bytes of low nibbles (weights 0..15) and high nibbles (weights 16..31)."""
    header = 4 if has_min else 2
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, header + 20)  # [N, G, block bytes]
    scale = blocks[..., 0:2].copy().view(np.float16)[..., 0]  # [N, G]
    minimum = blocks[..., 2:4].copy().view(np.float16)[..., 0] if has_min else (-16 * scale).astype(np.float16)
    fifth = np.unpackbits(blocks[..., header:header + 4], axis=-1, bitorder="little")  # [N, G, 32]: bit j, 0/1
    nibbles = blocks[..., header + 4:]  # [N, G, 16]
    q = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=-1)  # [N, G, 32]
    q |= fifth << 4
    return FastBlocks(q.reshape(rows, -1), 5, scale, minimum)


def _k_blocks(raw: np.ndarray, fifth_bit: bool) -> FastBlocks:
    """Q4_K (d, dmin, 12 bytes of scales, 128 bytes of nibbles: 144 per 256 weights) and Q5_K (the
    same with 32 bytes of fifth bits before the nibbles: 176). Byte l of the nibbles' chunk j (0..3)
    holds weight 64 j + l (low nibble, sub-block 2 j) and 64 j + 32 + l (high, sub-block 2 j + 1);
    Q5_K's fifth bits are bits 2 j and 2 j + 1 of byte l of qh."""
    size = 176 if fifth_bit else 144
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, size)  # [N, S, size]
    supers = blocks.shape[1]
    d = blocks[..., 0:2].copy().view(np.float16).astype(np.float32)  # [N, S, 1]
    dmin = blocks[..., 2:4].copy().view(np.float16).astype(np.float32)  # [N, S, 1]
    sc, m = _unpack_scales(blocks[..., 4:16])  # [N, S, 8] each
    nibbles = blocks[..., size - 128:].reshape(rows, supers, 4, 32)  # [N, S, chunk, 32]
    q = np.stack((nibbles & 0x0F, nibbles >> 4), axis=3)  # [N, S, chunk, low/high, 32]
    if fifth_bit:
        qh = blocks[..., 16:48]  # [N, S, 32]
        shift = np.arange(8, dtype=np.uint8).reshape(4, 2, 1)  # bit 2 j + half
        q = q | (((qh[:, :, None, None, :] >> shift) & 1) << 4)
    scale = (d * sc).astype(np.float16)  # [N, S, 8]
    minimum = (-(dmin * m)).astype(np.float16)  # [N, S, 8]
    return FastBlocks(q.reshape(rows, -1).astype(np.uint8), 5 if fifth_bit else 4, scale.reshape(rows, -1),
                      minimum.reshape(rows, -1))


def _q6_k_blocks(raw: np.ndarray) -> FastBlocks:
    """Q6_K: per 256 weights, ql (128 bytes), qh (64), 16 int8 scales, d (fp16): 210 bytes. Each half
    n of the super-block (128 weights) takes 64 bytes of ql and 32 of qh: weight 128 n + 32 i + l (i in
    0..3, l in 0..31) has the low nibble of ql[64 n + 32 (i % 2) + l] (high nibble for i >= 2) and
    bits 2 i, 2 i + 1 of qh[32 n + l] on top; its sub-block is (128 n + 32 i + l) / 16."""
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, 210)  # [N, S, 210]
    supers = blocks.shape[1]
    ql = blocks[..., 0:128].reshape(rows, supers, 2, 2, 32)  # [N, S, n, i % 2, l]
    qh = blocks[..., 128:192].reshape(rows, supers, 2, 1, 32)  # [N, S, n, 1, l]
    low = np.concatenate((ql & 0x0F, ql >> 4), axis=3)  # [N, S, n, i, l]
    shift = (2 * np.arange(4, dtype=np.uint8)).reshape(4, 1)  # bits 2 i, 2 i + 1
    q = low | (((qh >> shift) & 3) << 4)  # [N, S, n, i, l]
    sc = blocks[..., 192:208].copy().view(np.int8).astype(np.float32)  # [N, S, 16]
    d = blocks[..., 208:210].copy().view(np.float16).astype(np.float32)  # [N, S, 1]
    scale = (d * sc).astype(np.float16)  # [N, S, 16]
    minimum = (-32 * scale.astype(np.float32)).astype(np.float16)
    return FastBlocks(q.reshape(rows, -1).astype(np.uint8), 6, scale.reshape(rows, -1), minimum.reshape(rows, -1))


def _unpack_scales(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ggml's `get_scale_min_k4` on all 8 sub-blocks: packed [..., 12] -> scales, minimums [..., 8]
    float32. Sub-blocks 0-3: the low 6 bits of bytes 0-3 (scales) and 4-7 (minimums); 4-7: the low and
    high nibbles of bytes 8-11, with the top two bits of bytes 0-3 (scales) and 4-7 (minimums)."""
    low, mid, high = packed[..., 0:4], packed[..., 4:8], packed[..., 8:12]
    sc = np.concatenate((low & 63, (high & 0x0F) | ((low >> 6) << 4)), axis=-1)
    m = np.concatenate((mid & 63, (high >> 4) | ((mid >> 6) << 4)), axis=-1)
    return sc.astype(np.float32), m.astype(np.float32)
