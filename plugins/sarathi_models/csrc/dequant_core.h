// The tiled weights of `quant_matmul.cpp` turned back into bf16: for the steps too large for the
// quantized matmul (prefill chunks: `quant.QUANTIZED_MAX_ROWS` says why those multiply bf16 values) and
// for embedding lookups, so a model loaded from a GGUF file keeps one copy of each weight, the codes.
//
// Each weight is d * c + m in fp32, rounded to bf16 (ties to even, `kern::bf16_bits`). d and m are fp16
// and c has at most 8 bits, so the product is exact and the result does not depend on whether the
// compiler fuses it into an fma, nor on the ISA: the same bits everywhere, and for GGUF Q4_0, Q4_1,
// Q5_0, Q5_1 and Q8_0 the bits of gguf's own fp32 dequantization rounded to bf16. A 5- or 6-bit code is
// its nibble plus 16 times its fifth bit (plus 32 times its sixth), all exact in fp32.
//
// Plain C++ without ATen (the cores' rule: `tests/csrc/kernels_check.cpp` builds it for every level),
// on `vec8.h`'s 8 lanes: half a tile's rows per vector, one input at a time.
#pragma once

#include "bf16.h"
#include "quant_core.h"
#include "vec8.h"

#include <algorithm>
#include <cstdint>

namespace quant {

// One group's d and m per lane, for inputs 0-15 (half 0) and 16-31 (half 1): the same pair twice but
// for kEightHalves.
template <int Format>
struct GroupScales {
  float d[2][kTile], m[2][kTile];

  GroupScales() = default;
  explicit GroupScales(const uint16_t* gs) {
    for (int64_t lane = 0; lane < kTile; ++lane) {
      d[0][lane] = half_to_float(gs[lane]);
      m[0][lane] = half_to_float(gs[kTile + lane]);
      d[1][lane] = kHalves<Format> ? half_to_float(gs[2 * kTile + lane]) : d[0][lane];
      m[1][lane] = kHalves<Format> ? half_to_float(gs[3 * kTile + lane]) : m[0][lane];
    }
  }
};

// The 32-bit words holding input j (0..31 of a group) of a tile's lanes 8h..8h+7, and where in each word
// its code sits: (offset of the words in the group's bytes, shift, mask).
template <int Format>
inline void code_position(int64_t j, int64_t h, int64_t& offset, int& shift, uint32_t& mask) {
  if (kCodeBits<Format> == 8) {
    offset = (j / 4) * 64 + h * 32;
    shift = static_cast<int>(8 * (j % 4));
    mask = 0xFF;
  } else {  // chunk s holds inputs 4s..4s+3 in its low nibbles and 4(s + 4).. in its high ones
    offset = ((j / 4) % 4) * 64 + h * 32;
    shift = static_cast<int>(8 * (j % 4) + (j >= 16 ? 4 : 0));
    mask = 0x0F;
  }
}

constexpr int64_t kTilesPerBlock = 4;
// Tiles dequantized together: 4 x 16 lanes of an input are 128 contiguous bytes of wt, whole cache
// lines (one tile's 32 bytes alone wrote half lines, 2.5x slower on Zen 4).

// Tiles [begin, end) of a weight with n output rows and k inputs, written transposed into wt (bf16
// bits, rows `stride` apart, starting at tile `begin`'s first lane): row k holds input k of the tiles'
// outputs, so a tile's 16 lanes of one input land side by side. With wt the whole [K, N] (stride N),
// torch's GEMM takes wt.T as the [N, K] weight and gives F.linear's bits (checked in the tests).
template <int Format>
void dequantize_transposed(const uint8_t* codes, const uint16_t* scales, int64_t k, int64_t n, uint16_t* wt,
                           int64_t stride, int64_t begin, int64_t end) {
  namespace v8 = kern::v8;
  const int64_t groups = k / kGroup;
  for (int64_t first = begin; first < end; first += kTilesPerBlock) {
    const int64_t tiles = std::min(kTilesPerBlock, end - first);
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* gc[kTilesPerBlock];
      GroupScales<Format> s[kTilesPerBlock];
      for (int64_t b = 0; b < tiles; ++b) {
        gc[b] = codes + ((first + b) * groups + g) * kGroupBytes<Format>;
        s[b] = GroupScales<Format>(scales + ((first + b) * groups + g) * kGroupScales<Format>);
      }
      for (int64_t j = 0; j < kGroup; ++j) {
        for (int64_t b = 0; b < tiles; ++b) {
          const int64_t t = first + b, lanes = std::min<int64_t>(kTile, n - t * kTile);
          uint16_t* row = wt + (g * kGroup + j) * stride + (t - begin) * kTile;
          uint16_t partial[kTile];
          uint16_t* out = lanes == kTile ? row : partial;
          for (int64_t h = 0; h < 2; ++h) {
            int64_t offset;
            int shift;
            uint32_t mask;
            code_position<Format>(j, h, offset, shift, mask);
            const v8::F d = v8::load(s[b].d[j / 16] + 8 * h), m = v8::load(s[b].m[j / 16] + 8 * h);
            v8::F code = v8::codes(gc[b] + offset, shift, mask);
            for (int plane = 0; plane < kPlanes<Format>; ++plane)
              code = v8::add(code, v8::plane_values(plane_bits(gc[b], plane, j / 4, h), static_cast<int>(j % 4), 16 << plane));
            v8::store_bf16(out + 8 * h, v8::add(v8::mul(d, code), m));
          }
          if (lanes < kTile) std::copy(partial, partial + lanes, row);
        }
      }
    }
  }
}

// Output row `row` of the weight (k inputs) into out [K] (bf16 bits): an embedding's lookup.
template <int Format>
void dequantize_row(const uint8_t* codes, const uint16_t* scales, int64_t k, int64_t row, uint16_t* out) {
  const int64_t groups = k / kGroup, t = row / kTile, lane = row % kTile;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gc = codes + (t * groups + g) * kGroupBytes<Format>;
    const GroupScales<Format> s(scales + (t * groups + g) * kGroupScales<Format>);
    for (int64_t j = 0; j < kGroup; ++j)
      out[g * kGroup + j] =
          kern::bf16_bits(s.d[j / 16][lane] * static_cast<float>(code_at<Format>(gc, lane, j)) + s.m[j / 16][lane]);
  }
}

}  // namespace quant
