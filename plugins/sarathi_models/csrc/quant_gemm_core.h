// Prefill chunks' products with a weight kept as tiled codes (`quant_matmul.cpp`'s layout), without a
// bf16 copy of the weight: y [M, N] = x [M, K] @ w.T, x and y bf16, w dequantized tile by tile into a
// small buffer that stays in cache, then multiplied with `vdpbf16ps` (AVX-512 BF16).
//
// `dequantize` then torch's GEMM (what the other levels run) writes the whole bf16 weight out to memory
// and oneDNN reorders it inside every call: about 20% of a 400-token prompt on the 2-core Zen 4 VM. Here
// two tiles (32 output rows) at a time are dequantized into pairs of inputs (lane i of pair p holds
// w[i][2p] and w[i][2p + 1], each `d * c + m` rounded to bf16 by `vcvtne2ps2bf16`: to nearest even,
// as `dequant_core.h` rounds, for every value `d * c + m` takes with finite scales, which is never a
// NaN nor an fp32 denormal, where the instruction's rules differ), and eight
// rows of x at a time multiply them: per pair of inputs, two weight vectors, eight broadcasts of x's
// pair and sixteen vdpbf16ps into sixteen fp32 accumulators. The sums are fp32 in the order of the
// inputs, rounded to bf16 once at the end (c10's rounding).
//
// The avx2 and neon levels compute the same bits on `vec8.h`: the tile pair dequantized into bf16 rows
// (`dequantize_transposed`), and each vdpbf16ps as its two exact products added in Zen 4's order (the
// odd input's first), as fused multiply-adds on 8 lanes, two rows of x at a time. The portable build
// has no `quant_gemm` (`quant_gemm_supported`): its scalar form would be far slower than torch's GEMM,
// which it runs on the dequantized weight instead. Plain C++ with intrinsics, no ATen.
#pragma once

#include "bf16.h"
#include "dequant_core.h"
#include "isa.h"
#include "vec8.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace quant {

constexpr int64_t kPairLanes = 2 * kTile;

#if defined(SARATHI_AVX512)

constexpr int64_t kGemmRows = 8;  // rows of x per pass over a buffered tile pair: 16 accumulators

// The bf16 bits of 16 fp32 lanes in the low halves of 32-bit lanes (c10's rounding; NaN -> 0x7FC0).
inline __m512i bf16_lanes(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  return _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
}

// Tiles `first` and `first + 1` (lanes past the weight's n outputs, or a missing second tile, get
// zeros) as pairs: buffer [K / 2, 32] uint32, lane i of pair p = bf16(w[i][2p]) | bf16(w[i][2p+1]) << 16.
template <int Format>
void dequantize_pairs(const uint8_t* codes, const uint16_t* scales, int64_t k, int64_t n, int64_t first,
                      uint32_t* buffer) {
  const int64_t groups = k / kGroup, tiles = (n + kTile - 1) / kTile;
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                              22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t t = first + b, lanes = std::clamp<int64_t>(n - t * kTile, 0, kTile);
    const __mmask32 live = static_cast<__mmask32>((uint64_t{1} << (2 * lanes)) - 1);  // two bf16 per lane
    for (int64_t g = 0; g < groups; ++g) {
      uint32_t* out = buffer + g * (kGroup / 2) * kPairLanes + b * kTile;
      if (t >= tiles) {
        for (int64_t p = 0; p < kGroup / 2; ++p) _mm512_storeu_si512(out + p * kPairLanes, _mm512_setzero_si512());
        continue;
      }
      const uint8_t* gc = codes + (t * groups + g) * kGroupBytes<Format>;
      const GroupScales<Format> s(scales + (t * groups + g) * kGroupScales<Format>);
      for (int64_t j = 0; j < kGroup; j += 2) {
        __m512 w[2];
        for (int64_t i = 0; i < 2; ++i) {
          int64_t offset;
          int shift;
          uint32_t mask;
          code_position<Format>(j + i, 0, offset, shift, mask);
          const __m512i words = _mm512_loadu_si512(gc + offset);
          __m512i code = _mm512_and_si512(_mm512_srl_epi32(words, _mm_cvtsi32_si128(shift)),
                                          _mm512_set1_epi32(static_cast<int>(mask)));
          for (int plane = 0; plane < kPlanes<Format>; ++plane) {  // lane l: bit 4 (l % 8) + (j + i) % 4
            const __m512i halves = _mm512_inserti64x4(                   // of its half's word of the plane
                _mm512_castsi256_si512(_mm256_set1_epi32(static_cast<int>(plane_bits(gc, plane, (j + i) / 4, 0)))),
                _mm256_set1_epi32(static_cast<int>(plane_bits(gc, plane, (j + i) / 4, 1))), 1);
            const __m512i shifts = _mm512_add_epi32(
                _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
                _mm512_set1_epi32(static_cast<int>((j + i) % 4)));
            const __m512i bit = _mm512_and_si512(_mm512_srlv_epi32(halves, shifts), _mm512_set1_epi32(1));
            code = _mm512_or_si512(code, _mm512_slli_epi32(bit, 4 + plane));
          }
          w[i] = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(s.d[(j + i) / 16]), _mm512_cvtepi32_ps(code)),
                               _mm512_loadu_ps(s.m[(j + i) / 16]));
        }
        // [w0 lanes 0-15 | w1 lanes 0-15] as bf16, then lane i's two values side by side
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(w[1], w[0]);
        _mm512_storeu_si512(out + (j / 2) * kPairLanes, _mm512_maskz_permutexvar_epi16(live, interleave, both));
      }
    }
  }
}

// Rows [row, row + R) of x [M, K] times the buffered tile pair into out [M, N] (bf16 bits), lanes from
// `lane0`, `lanes` of them (<= 32).
template <int R>
void gemm_rows(const uint16_t* x, int64_t k, const uint32_t* buffer, int64_t row, uint16_t* out, int64_t n,
               int64_t lane0, int64_t lanes) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint32_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = reinterpret_cast<const uint32_t*>(x + (row + r) * k);
  for (int64_t p = 0; p < k / 2; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(buffer + p * kPairLanes);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(buffer + p * kPairLanes + kTile);
    for (int r = 0; r < R; ++r) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(static_cast<int>(xr[r][p]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], w0, xb);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], w1, xb);
    }
  }
  const __mmask16 lo = static_cast<__mmask16>(lanes >= kTile ? 0xFFFF : (1u << lanes) - 1);
  const __mmask16 hi = static_cast<__mmask16>(lanes >= kPairLanes ? 0xFFFF : lanes > kTile ? (1u << (lanes - kTile)) - 1 : 0);
  for (int r = 0; r < R; ++r) {
    uint16_t* y = out + (row + r) * n + lane0;
    _mm256_mask_storeu_epi16(y, lo, _mm512_cvtepi32_epi16(bf16_lanes(acc[r][0])));
    _mm256_mask_storeu_epi16(y + kTile, hi, _mm512_cvtepi32_epi16(bf16_lanes(acc[r][1])));
  }
}

using GemmBuffer = uint32_t;  // pairs of inputs, see `dequantize_pairs`

template <int Format>
void fill_buffer(const uint8_t* codes, const uint16_t* scales, int64_t k, int64_t n, int64_t first, GemmBuffer* buffer) {
  dequantize_pairs<Format>(codes, scales, k, n, first, buffer);
}

#elif defined(SARATHI_AVX2) || defined(SARATHI_NEON)

constexpr int64_t kGemmRows = 2;  // rows of x per pass: 8 accumulators of 8 lanes (16 registers on AVX2)

using GemmBuffer = uint16_t;  // [K, 32] bf16 bits: the tile pair's weights, transposed

// Tiles `first` and `first + 1` into buffer [K, 32] (zeros past the weight's outputs).
template <int Format>
void fill_buffer(const uint8_t* codes, const uint16_t* scales, int64_t k, int64_t n, int64_t first, GemmBuffer* buffer) {
  const int64_t tiles = (n + kTile - 1) / kTile, last = std::min(first + 2, tiles);
  if (n < (first + 2) * kTile) std::fill(buffer, buffer + k * kPairLanes, uint16_t{0});
  dequantize_transposed<Format>(codes, scales, k, n, buffer, kPairLanes, first, last);
}

// Rows [row, row + R) of x [M, K] times the buffered tile pair into out [M, N] (bf16 bits), lanes from
// `lane0`, `lanes` of them (<= 32): vdpbf16ps' arithmetic, see the file's comment.
template <int R>
void gemm_rows(const uint16_t* x, int64_t k, const GemmBuffer* buffer, int64_t row, uint16_t* out, int64_t n,
               int64_t lane0, int64_t lanes) {
  namespace v8 = kern::v8;
  constexpr int kVectors = kPairLanes / 8;
  v8::F acc[R][kVectors];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVectors; ++v) acc[r][v] = v8::zero();
  for (int64_t p = 0; p < k / 2; ++p) {
    const GemmBuffer* even = buffer + 2 * p * kPairLanes;
    const GemmBuffer* odd = even + kPairLanes;
    v8::F xe[R], xo[R];
    for (int r = 0; r < R; ++r) {
      const uint16_t* xr = x + (row + r) * k + 2 * p;
      xe[r] = v8::set1(static_cast<float>(reinterpret_cast<const kern::bf16*>(xr)[0]));
      xo[r] = v8::set1(static_cast<float>(reinterpret_cast<const kern::bf16*>(xr)[1]));
    }
    for (int v = 0; v < kVectors; ++v) {
      const v8::F wo = v8::load_bf16(odd + 8 * v), we = v8::load_bf16(even + 8 * v);
      for (int r = 0; r < R; ++r) acc[r][v] = v8::fma(we, xe[r], v8::fma(wo, xo[r], acc[r][v]));
    }
  }
  for (int r = 0; r < R; ++r) {
    uint16_t* y = out + (row + r) * n + lane0;
    uint16_t values[kPairLanes];
    for (int v = 0; v < kVectors; ++v) v8::store_bf16(values + 8 * v, acc[r][v]);
    std::copy(values, values + lanes, y);
  }
}

#endif

#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2) || defined(SARATHI_NEON)
#define SARATHI_QUANT_GEMM 1

// Tile pairs [begin, end) (pair q covers tiles 2q and 2q + 1) of y = x @ w.T for all M rows.
template <int Format>
void gemm_tile_pairs(const uint16_t* x, int64_t m, int64_t k, const uint8_t* codes, const uint16_t* scales,
                     int64_t n, uint16_t* out, int64_t begin, int64_t end) {
  std::vector<GemmBuffer> buffer(static_cast<size_t>(k * kPairLanes * sizeof(uint16_t) / sizeof(GemmBuffer)));
  for (int64_t q = begin; q < end; ++q) {
    fill_buffer<Format>(codes, scales, k, n, 2 * q, buffer.data());
    const int64_t lane0 = 2 * q * kTile, lanes = std::min<int64_t>(kPairLanes, n - lane0);
    int64_t row = 0;
    for (; row + kGemmRows <= m; row += kGemmRows) gemm_rows<kGemmRows>(x, k, buffer.data(), row, out, n, lane0, lanes);
    if constexpr (kGemmRows > 4) {
      if (row + 4 <= m) {
        gemm_rows<4>(x, k, buffer.data(), row, out, n, lane0, lanes);
        row += 4;
      }
    }
    if constexpr (kGemmRows > 2) {
      if (row + 2 <= m) {
        gemm_rows<2>(x, k, buffer.data(), row, out, n, lane0, lanes);
        row += 2;
      }
    }
    if (row < m) gemm_rows<1>(x, k, buffer.data(), row, out, n, lane0, lanes);
  }
}

#endif

}  // namespace quant
