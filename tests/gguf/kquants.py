"""Q4_K, Q5_K and Q6_K blocks written from float weights, for tests (the `gguf` package dequantizes
K-quants but cannot quantize them, and llama.cpp is not a test dependency).

A plain quantizer, not llama.cpp's (which searches each sub-block's scale and minimum): per sub-block
(32 weights; 16 for Q6_K) the step from the range (and for Q4_K / Q5_K the minimum), rounded to a
6-bit (Q6_K: 8-bit) multiple of the super-block's scale, then each weight's code. The byte layouts are
ggml's `block_q4_K`, `block_q5_K` and `block_q6_K`; `gguf.quants.dequantize` reading these blocks back
close to the weights is what the tests check the layouts by.
"""

from __future__ import annotations

import numpy as np

SUPER = 256  # weights per super-block
SUB = 32  # weights per sub-block (8 per super-block)


def quantize_k(weights: np.ndarray, bits: int) -> np.ndarray:
    """weights [N, K] (K a multiple of 256) -> Q4_K (bits 4) or Q5_K (bits 5) blocks [N, K / 256 * size] uint8."""
    rows, k = weights.shape
    levels = (1 << bits) - 1
    x = weights.astype(np.float32).reshape(rows, k // SUPER, 8, SUB)  # [N, S, sub, 32]
    low = np.minimum(x.min(axis=-1), 0.0)  # [N, S, 8]: the minimum as stored is -dmin * m >= its negation
    step = (x.max(axis=-1) - low) / levels  # [N, S, 8]
    d = (step.max(axis=-1) / 63).astype(np.float16)  # [N, S]
    dmin = ((-low).max(axis=-1) / 63).astype(np.float16)  # [N, S]
    d32, dmin32 = d.astype(np.float32)[..., None], dmin.astype(np.float32)[..., None]
    sc = np.clip(np.round(np.divide(step, d32, out=np.zeros_like(step), where=d32 > 0)), 1, 63).astype(np.uint8)
    m = np.clip(np.round(np.divide(-low, dmin32, out=np.zeros_like(low), where=dmin32 > 0)), 0, 63).astype(np.uint8)
    scale = (d32 * sc)[..., None]  # [N, S, 8, 1]
    offset = (dmin32 * m)[..., None]
    q = np.clip(np.round(np.divide(x + offset, scale, out=np.zeros_like(x), where=scale > 0)), 0, levels)
    q = q.astype(np.uint8).reshape(rows, k // SUPER, 4, 2, SUB)  # [N, S, pair j, sub 2j / 2j+1, 32]
    parts = [d.view(np.uint8).reshape(rows, -1, 2), dmin.view(np.uint8).reshape(rows, -1, 2), _pack_scales(sc, m)]
    if bits == 5:
        high = (q >> 4) & 1  # [N, S, 4, 2, 32]: bit 2j of qh byte l is sub-block 2j's, bit 2j+1 sub-block 2j+1's
        qh = np.zeros((rows, k // SUPER, SUB), dtype=np.uint8)
        for j in range(4):
            qh |= (high[:, :, j, 0] << (2 * j)) | (high[:, :, j, 1] << (2 * j + 1))
        parts.append(qh)
        q = q & 0x0F
    parts.append((q[:, :, :, 0] | (q[:, :, :, 1] << 4)).reshape(rows, k // SUPER, 128))
    return np.concatenate(parts, axis=-1).reshape(rows, -1)


def _pack_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The 8 scales and 8 minimums (6 bits each) of each super-block in ggml's 12 bytes: bytes 0-3 hold
    scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 minimums 0-3 and the top bits
    of minimums 4-7; bytes 8-11 the low 4 bits of scales 4-7 and (high nibble) of minimums 4-7."""
    out = np.zeros((*sc.shape[:-1], 12), dtype=np.uint8)
    out[..., 0:4] = sc[..., 0:4] | ((sc[..., 4:8] >> 4) << 6)
    out[..., 4:8] = m[..., 0:4] | ((m[..., 4:8] >> 4) << 6)
    out[..., 8:12] = (sc[..., 4:8] & 0x0F) | ((m[..., 4:8] & 0x0F) << 4)
    return out


def quantize_q6_k(weights: np.ndarray) -> np.ndarray:
    """weights [N, K] (K a multiple of 256) -> Q6_K blocks [N, K / 256 * 210] uint8: per sub-block of
    16 a symmetric step (q - 32 in -32..31), an int8 multiple of the super-block's d."""
    rows, k = weights.shape
    x = weights.astype(np.float32).reshape(rows, k // SUPER, 16, 16)  # [N, S, sub, 16]
    step = np.abs(x).max(axis=-1) / 31  # [N, S, 16]
    d = (step.max(axis=-1) / 127).astype(np.float16)  # [N, S]
    d32 = d.astype(np.float32)[..., None]
    sc = np.clip(np.round(np.divide(step, d32, out=np.zeros_like(step), where=d32 > 0)), 1, 127).astype(np.int8)
    scale = (d32 * sc)[..., None]  # [N, S, 16, 1]
    q = np.clip(np.round(np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)) + 32, 0, 63).astype(np.uint8)
    q = q.reshape(rows, k // SUPER, 2, 4, 32)  # [N, S, half n, i, l]: weight 128 n + 32 i + l
    low_bits = q & 0x0F
    ql = low_bits[:, :, :, 0:2] | (low_bits[:, :, :, 2:4] << 4)  # [N, S, n, i % 2, l]: i < 2 low nibbles
    qh = np.zeros((rows, k // SUPER, 2, 32), dtype=np.uint8)
    for i in range(4):
        qh |= (q[:, :, :, i] >> 4) << (2 * i)
    parts = [ql.reshape(rows, -1, 128), qh.reshape(rows, -1, 64), sc.view(np.uint8).reshape(rows, -1, 16),
             d.view(np.uint8).reshape(rows, -1, 2)]
    return np.concatenate(parts, axis=-1).reshape(rows, -1)
