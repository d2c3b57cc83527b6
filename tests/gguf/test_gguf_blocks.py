"""GGML's block formats read into the quantized kernels' form (`gguf_blocks`): per group of 32 inputs,
unsigned codes with one fp16 scale and one fp16 minimum, the weight being scale * code + minimum.
Held to `gguf.quants.dequantize` on the same bytes: bit for bit for the types whose scales are fp16
in the file, within the fp16 rounding of d x sub-block scale for the K-quants."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from sarathi_models.gguf_blocks import FAST_TYPES, fast_blocks
from tests.gguf.kquants import quantize_k, quantize_q6_k

Q = gguf.GGMLQuantizationType
LEGACY = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]


def weights(rows: int, k: int, seed: int) -> np.ndarray:
    """[rows, k] float32 with outlier rows and columns, as trained weights have."""
    gen = np.random.default_rng(seed)
    return (gen.standard_normal((rows, k)) * np.exp(gen.standard_normal((rows, 1)))).astype(np.float32) * 0.05


def blocks_of(qtype: Q, array: np.ndarray) -> np.ndarray:
    if qtype in (Q.Q4_K, Q.Q5_K):
        return quantize_k(array, 4 if qtype == Q.Q4_K else 5)
    if qtype == Q.Q6_K:
        return quantize_q6_k(array)
    return gguf.quants.quantize(array, qtype)


def as_weight(blocks) -> np.ndarray:
    """scale * code + minimum per group of 32 (of 16 where there are two scales a group), in float64: [N, K]."""
    rows, k = blocks.codes.shape
    codes = blocks.codes.reshape(rows, blocks.scale.shape[1], -1).astype(np.float64)
    return (codes * blocks.scale.astype(np.float64)[..., None] + blocks.minimum.astype(np.float64)[..., None]).reshape(rows, k)


@pytest.mark.parametrize("qtype", LEGACY, ids=[t.name for t in LEGACY])
def test_legacy_blocks_read_exactly(qtype):
    raw = blocks_of(qtype, weights(48, 512, seed=int(qtype)))
    blocks = fast_blocks(raw, qtype)
    assert blocks.codes.dtype == np.uint8 and blocks.scale.dtype == np.float16 and blocks.minimum.dtype == np.float16
    assert int(blocks.codes.max()) < 2 ** blocks.bits
    want = gguf.quants.dequantize(raw, qtype).astype(np.float64)
    np.testing.assert_array_equal(as_weight(blocks).astype(np.float32), want.astype(np.float32))


K_QUANTS = [Q.Q4_K, Q.Q5_K, Q.Q6_K]
CODE_BITS = {Q.Q4_K: 4, Q.Q5_K: 5, Q.Q6_K: 6}


@pytest.mark.parametrize("qtype", K_QUANTS, ids=[t.name for t in K_QUANTS])
def test_k_quant_blocks_read_within_the_scales_fp16_rounding(qtype):
    array = weights(48, 512, seed=int(qtype))
    raw = blocks_of(qtype, array)
    want = gguf.quants.dequantize(raw, qtype).astype(np.float64)  # [N, K]
    # the test quantizer writes blocks gguf reads back as about the weights it was given
    step = (array.max() - array.min()) / 15
    assert np.abs(want - array).max() < step
    blocks = fast_blocks(raw, qtype)
    assert blocks.bits == {Q.Q4_K: 4, Q.Q5_K: 5, Q.Q6_K: 6}[qtype] and int(blocks.codes.max()) < 2 ** CODE_BITS[qtype]
    assert blocks.scale.shape[1] == array.shape[1] // (16 if qtype == Q.Q6_K else 32)
    # d x sc and dmin x m are rounded to fp16 once per group: a relative error of at most 2^-11 in each
    rows, k = array.shape
    codes = blocks.codes.reshape(rows, blocks.scale.shape[1], -1).astype(np.float64)
    bound = (codes * np.abs(blocks.scale.astype(np.float64))[..., None]
             + np.abs(blocks.minimum.astype(np.float64))[..., None]) * 2.0**-11
    assert np.all(np.abs(as_weight(blocks) - want) <= bound.reshape(rows, k) + 1e-12)
    assert np.abs(as_weight(blocks) - want).max() > 0  # the rounding is real: this is not the exact path


def test_random_k_quant_bytes_read_as_gguf_reads_them():
    """Any bytes make a block: every bit of the layouts (scales packed in 12 bytes, the fifth bit in
    qh) is read where ggml reads it, checked on random blocks with sane fp16 super-block scales."""
    gen = np.random.default_rng(7)
    for qtype, size, scales_at in ((Q.Q4_K, 144, slice(0, 4)), (Q.Q5_K, 176, slice(0, 4)), (Q.Q6_K, 210, slice(208, 210))):
        raw = gen.integers(0, 256, (16, 2 * size), dtype=np.uint8)
        supers = raw.reshape(16, 2, size)
        count = (scales_at.stop - scales_at.start) // 2
        fp16 = gen.uniform(1e-3, 1e-2, (16, 2, count)).astype(np.float16)
        supers[..., scales_at] = fp16.view(np.uint8).reshape(16, 2, 2 * count)
        blocks = fast_blocks(raw, qtype)
        want = gguf.quants.dequantize(raw, qtype).astype(np.float64)
        scale_error = np.abs(as_weight(blocks) - want).max() / np.abs(want).max()
        assert scale_error < 2.0**-10, (qtype.name, scale_error)


def test_other_types_are_not_on_the_fast_path():
    assert Q.Q3_K not in FAST_TYPES and Q.IQ4_XS not in FAST_TYPES and Q.F16 not in FAST_TYPES
    raw = np.zeros((2, 110), dtype=np.uint8)
    with pytest.raises(ValueError, match="Q3_K"):
        fast_blocks(raw, Q.Q3_K)
