"""The CPU kernels' `mask_disallowed_` on every ISA level built here, against the bits themselves: -inf
exactly where a row's grammar bitmask has a 0 bit or no word, the other logits and the unmasked rows
untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def expected(logits: torch.Tensor, rows: list[int], words: np.ndarray) -> torch.Tensor:
    """The reference: bits unpacked in numpy, little-endian within each word."""
    out = logits.clone()  # [S, V]
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")  # [M, 32 W]
    for m, row in enumerate(rows):
        allowed = np.zeros(logits.shape[1], dtype=bool)
        covered = min(logits.shape[1], bits.shape[1])
        allowed[:covered] = bits[m, :covered] == 1
        out[row, torch.from_numpy(~allowed)] = float("-inf")
    return out


@pytest.mark.parametrize("vocab, width", [(70, 3), (100, 3), (49152, 1536), (33, 1)])
@pytest.mark.parametrize("density", ["random", "sparse", "full"])
def test_mask_disallowed_matches_the_bits(fused, vocab, width, density):
    generator = np.random.default_rng(vocab + width)
    logits = torch.randn(5, vocab, generator=torch.Generator().manual_seed(0))  # [S, V]
    rows = [4, 1, 2]
    words = {"random": generator.integers(-2**31, 2**31, size=(3, width), dtype=np.int64).astype(np.int32),
             "sparse": np.zeros((3, width), dtype=np.int32),
             "full": np.full((3, width), -1, dtype=np.int32)}[density]  # [M, W]
    if density == "sparse":
        words[:, 0] = 0b1010_0000_0000_0001
    out = logits.clone()
    fused.mask_disallowed_(out, rows, [torch.from_numpy(row) for row in words])
    assert torch.equal(out, expected(logits, rows, words))
    assert torch.equal(out[[0, 3]], logits[[0, 3]])


def test_mask_disallowed_refuses_what_it_cannot_read(fused):
    with pytest.raises(RuntimeError, match="rows must index"):
        fused.mask_disallowed_(torch.zeros(2, 64), [2], [torch.zeros(2, dtype=torch.int32)])
    with pytest.raises(RuntimeError, match="float32"):
        fused.mask_disallowed_(torch.zeros(2, 64, dtype=torch.bfloat16), [0], [torch.zeros(2, dtype=torch.int32)])
    with pytest.raises(RuntimeError, match="int32"):
        fused.mask_disallowed_(torch.zeros(2, 64), [0], [torch.zeros(2, dtype=torch.int64)])
