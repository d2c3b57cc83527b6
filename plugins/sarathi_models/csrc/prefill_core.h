// Prefill-chunk attention over the paged KV cache, in plain C++ (`prefill_attention.cpp` binds it to
// tensors and says what it computes; `tests/csrc/kernels_check.cpp` builds it for every ISA level,
// ARM64 included): one task is one KV head and 16 query positions of the chunk. The avx512 level runs
// `attend_tile` in 512-bit code; the others replay it in 8-lane vectors (vec8.h), the same bits.
#pragma once

#include "balance.h"
#include "bf16.h"
#include "isa.h"
#include "simd.h"
#include "vec8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace kern {

constexpr int64_t kTile = 16;  // query positions per task, keys per block

#if defined(SARATHI_AVX512)
// 16x16 transpose of 32-bit lanes: in[r] lane c -> out[c] lane r.
inline void transpose16(const __m512i* in, __m512i* out) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // u[4i + k] holds, in each 128-bit lane L, column (4L + k) of rows 4i..4i+3
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      t[8 * i + k] = _mm512_shuffle_i32x4(u[8 * i + k], u[8 * i + 4 + k], 0x88);
      t[8 * i + 4 + k] = _mm512_shuffle_i32x4(u[8 * i + k], u[8 * i + 4 + k], 0xDD);
    }
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0x88);
    out[8 + k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0xDD);
    out[4 + k] = _mm512_shuffle_i32x4(t[4 + k], t[12 + k], 0x88);
    out[12 + k] = _mm512_shuffle_i32x4(t[4 + k], t[12 + k], 0xDD);
  }
}

// One task: KV head h, chunk positions i0 .. i0 + 15 (fewer at the end). q, out [T, Hq, 64] as uint16
// bits; p0 = L - T, the chunk's first position.
inline void attend_tile(const uint16_t* qp, const uint16_t* kp, const uint16_t* vp, const int64_t* tp, uint16_t* op,
                        int64_t T, int64_t hq, int64_t hkv, int64_t bs, int64_t bstride, int64_t rstride,
                        int64_t hstride, int64_t p0, float fscale, int64_t h, int64_t tile) {
  constexpr int64_t D = 64;
  constexpr int kMaxRows = 16 * 8;  // 16 positions x at most 8 query heads per KV head
  const int64_t group = hq / hkv;
  alignas(64) float acc[kMaxRows][64];  // [rows, D] fp32, lanes in vdpbf16ps's pair order (see the end)
  float m[kMaxRows], l[kMaxRows];  // running maximum and sum per query row
  alignas(64) uint16_t probs[kMaxRows][16];  // [rows, 16] bf16 bits of the block's probabilities
  const int64_t i0 = tile * kTile, rows_pos = std::min<int64_t>(kTile, T - i0);
  const int64_t rows = rows_pos * group;  // query rows: (position r, head g) -> r * group + g
  for (int64_t r = 0; r < rows; ++r) {
    m[r] = std::numeric_limits<float>::lowest();  // finite: the build has -ffast-math
    l[r] = 0.f;
    for (int d = 0; d < 64; ++d) acc[r][d] = 0.f;
  }
  const int64_t last_key = p0 + i0 + rows_pos - 1;  // the tile's last position sees keys 0 .. last_key
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    const int64_t nkeys = std::min<int64_t>(kTile, last_key + 1 - j0);
    // the block's keys as 32-bit pairs of dims, transposed: kt[dp] lane j = dims 2 dp, 2 dp + 1 of key j
    // (a short block repeats its last key, masked below); its values zero-padded
    __m512i krow[32], kt[32];
    __m512i vrow0[16], vrow1[16];
    for (int j = 0; j < 16; ++j) {
      const int64_t pos = j0 + std::min<int64_t>(j, nkeys - 1);
      const uint16_t* kr = kp + tp[pos / bs] * bstride + (pos % bs) * rstride + h * hstride;
      const uint16_t* vr = vp + tp[pos / bs] * bstride + (pos % bs) * rstride + h * hstride;
      krow[j] = _mm512_loadu_si512(kr);            // dims 0-31
      krow[16 + j] = _mm512_loadu_si512(kr + 32);  // dims 32-63
      vrow0[j] = j < nkeys ? _mm512_loadu_si512(vr) : _mm512_setzero_si512();
      vrow1[j] = j < nkeys ? _mm512_loadu_si512(vr + 32) : _mm512_setzero_si512();
    }
    transpose16(krow, kt);
    transpose16(krow + 16, kt + 16);
    // values two keys at a time: rows 2 pr and 2 pr + 1 interleaved dim by dim (as in decode attention)
    __m512bh vpair[8][4];
    for (int pr = 0; pr < 8; ++pr) {
      const __m512i a0 = vrow0[2 * pr], a1 = vrow1[2 * pr], b0 = vrow0[2 * pr + 1], b1 = vrow1[2 * pr + 1];
      vpair[pr][0] = (__m512bh)_mm512_unpacklo_epi16(a0, b0);
      vpair[pr][1] = (__m512bh)_mm512_unpackhi_epi16(a0, b0);
      vpair[pr][2] = (__m512bh)_mm512_unpacklo_epi16(a1, b1);
      vpair[pr][3] = (__m512bh)_mm512_unpackhi_epi16(a1, b1);
    }
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {  // scores for 8 query rows at a time: 8 accumulators
      const int64_t nr = std::min<int64_t>(8, rows - r0);
      __m512 s[8];
      for (int r = 0; r < 8; ++r) s[r] = _mm512_setzero_ps();
      const uint32_t* qpairs[8];
      for (int r = 0; r < nr; ++r) {
        const int64_t row = r0 + r, pos = row / group, g = row % group;
        qpairs[r] = reinterpret_cast<const uint32_t*>(qp + ((i0 + pos) * hq + h * group + g) * D);
      }
      for (int dp = 0; dp < 32; ++dp) {
        const __m512bh k = (__m512bh)kt[dp];
        for (int r = 0; r < 8; ++r)
          if (r < nr) s[r] = _mm512_dpbf16_ps(s[r], (__m512bh)_mm512_set1_epi32(qpairs[r][dp]), k);
      }
      // the 8 rows' softmax steps phase by phase, so their dependency chains (reduction -> running
      // maximum -> exp -> sum) overlap instead of running one row after another
      __mmask16 mask[8];
      __m512 p[8];
      float corr[8];
      for (int r = 0; r < nr; ++r) {
        const int64_t row = r0 + r, pos = p0 + i0 + row / group;
        const int64_t visible = std::min<int64_t>(nkeys, pos - j0 + 1);  // keys j0 .. pos
        // a block wholly after this row's position contributes nothing (mask 0)
        mask[r] = visible <= 0 ? 0 : visible >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << visible) - 1);
        s[r] = _mm512_mul_ps(s[r], _mm512_set1_ps(fscale));
      }
      for (int r = 0; r < nr; ++r) {
        if (!mask[r]) continue;
        const int64_t row = r0 + r;
        // online softmax: rescale what the row has by e^(old max - new max), add this block
        const float m_new = std::max(m[row], _mm512_mask_reduce_max_ps(mask[r], s[r]));
        corr[r] = m_new == m[row] ? 1.f : exp_nonpositive_scalar(m[row] - m_new);  // the maximum settles early
        m[row] = m_new;
        p[r] = _mm512_maskz_mov_ps(mask[r], exp_nonpositive(_mm512_sub_ps(s[r], _mm512_set1_ps(m_new))));
      }
      for (int r = 0; r < nr; ++r) {
        if (!mask[r]) continue;
        const int64_t row = r0 + r;
        l[row] = l[row] * corr[r] + _mm512_reduce_add_ps(p[r]);
        const __m256bh pb = _mm512_cvtneps_pbh(p[r]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(probs[row]), (__m256i)pb);
      }
      for (int r = 0; r < nr; ++r) {
        if (!mask[r]) continue;
        const int64_t row = r0 + r;
        __m512 a[4];
        for (int c = 0; c < 4; ++c) a[c] = _mm512_load_ps(acc[row] + 16 * c);
        if (corr[r] != 1.f)
          for (int c = 0; c < 4; ++c) a[c] = _mm512_mul_ps(a[c], _mm512_set1_ps(corr[r]));
        for (int pr = 0; pr < 8; ++pr) {
          uint32_t bits;
          std::memcpy(&bits, probs[row] + 2 * pr, 4);
          const __m512bh pp = (__m512bh)_mm512_set1_epi32(bits);
          for (int c = 0; c < 4; ++c) a[c] = _mm512_dpbf16_ps(a[c], pp, vpair[pr][c]);
        }
        for (int c = 0; c < 4; ++c) _mm512_store_ps(acc[row] + 16 * c, a[c]);
      }
    }
  }
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t pos = row / group, g = row % group;
    uint16_t* o = op + ((i0 + pos) * hq + h * group + g) * D;
    const float inv = 1.f / l[row];
    // lane k of acc[.][c] holds dim 32 (c / 2) + 8 (k / 4) + 4 (c % 2) + k % 4
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 16; ++k) {
        const float v = acc[row][16 * c + k] * inv;
        const int dim = 32 * (c / 2) + 8 * (k / 4) + 4 * (c % 2) + k % 4;
        o[dim] = bf16_bits(v);
      }
  }
}

#else

// `attend_tile` in 8-lane vectors (vec8.h: AVX2, NEON or scalar), operation for operation, so the
// avx2, neon and portable builds' prefill attention is the same bits. A block's 16 keys are lanes 0-7
// (lo) and 8-15 (hi); their dim pairs are transposed through memory (kt[pair][key]).
inline void attend_tile(const uint16_t* qp, const uint16_t* kp, const uint16_t* vp, const int64_t* tp, uint16_t* op,
                        int64_t T, int64_t hq, int64_t hkv, int64_t bs, int64_t bstride, int64_t rstride,
                        int64_t hstride, int64_t p0, float fscale, int64_t h, int64_t tile) {
  constexpr int64_t D = 64;
  constexpr int kMaxRows = 16 * 8;
  const int64_t group = hq / hkv;
  alignas(32) float acc[kMaxRows][64];  // [rows, D] fp32, natural dim order
  float m[kMaxRows], l[kMaxRows];
  alignas(32) float probs[kMaxRows][16];  // [rows, 16] the block's probabilities, bf16-rounded
  const int64_t i0 = tile * kTile, rows_pos = std::min<int64_t>(kTile, T - i0);
  const int64_t rows = rows_pos * group;
  for (int64_t r = 0; r < rows; ++r) {
    m[r] = std::numeric_limits<float>::lowest();
    l[r] = 0.f;
    for (int d = 0; d < 64; ++d) acc[r][d] = 0.f;
  }
  const int64_t last_key = p0 + i0 + rows_pos - 1;
  alignas(32) uint32_t kt[32][16];  // [dim pair, key]: the block's keys, transposed
  alignas(32) float values[16][64];  // [key, D] the block's values in fp32, zero past the block's keys
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    const int64_t nkeys = std::min<int64_t>(kTile, last_key + 1 - j0);
    for (int j = 0; j < 16; ++j) {
      const int64_t pos = j0 + std::min<int64_t>(j, nkeys - 1);
      const uint16_t* kr = kp + tp[pos / bs] * bstride + (pos % bs) * rstride + h * hstride;
      const uint16_t* vr = vp + tp[pos / bs] * bstride + (pos % bs) * rstride + h * hstride;
      uint32_t pairs[32];
      std::memcpy(pairs, kr, sizeof(pairs));
      for (int dp = 0; dp < 32; ++dp) kt[dp][j] = pairs[dp];
      for (int c = 0; c < 8; ++c)
        v8::store(values[j] + 8 * c, j < nkeys ? v8::load_bf16(vr + 8 * c) : v8::zero());
    }
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t pos = p0 + i0 + row / group, g = row % group;
      const int64_t visible = std::min<int64_t>(nkeys, pos - j0 + 1);
      if (visible <= 0) continue;
      const uint32_t* qpairs = reinterpret_cast<const uint32_t*>(qp + ((i0 + row / group) * hq + h * group + g) * D);
      v8::F lo = v8::zero(), hi = v8::zero();
      for (int dp = 0; dp < 32; ++dp) {
        const v8::P q = v8::set1_pairs(qpairs[dp]);
        lo = v8::dpbf16(lo, q, v8::load_pairs(kt[dp]));
        hi = v8::dpbf16(hi, q, v8::load_pairs(kt[dp] + 8));
      }
      const v8::F scale = v8::set1(fscale);
      alignas(32) float s[16];
      v8::store(s, v8::mul(lo, scale));
      v8::store(s + 8, v8::mul(hi, scale));
      float block_max = std::numeric_limits<float>::lowest();
      for (int j = 0; j < visible; ++j) block_max = std::max(block_max, s[j]);
      const float m_new = std::max(m[row], block_max);
      const float corr = m_new == m[row] ? 1.f : exp_nonpositive_scalar(m[row] - m_new);
      m[row] = m_new;
      const v8::F top = v8::set1(m_new);
      alignas(32) float p[16];
      v8::store(p, v8::exp_nonpositive(v8::sub(v8::load(s), top)));
      v8::store(p + 8, v8::exp_nonpositive(v8::sub(v8::load(s + 8), top)));
      for (int j = visible; j < 16; ++j) p[j] = 0.f;
      l[row] = l[row] * corr + v8::reduce_add16(v8::load(p), v8::load(p + 8));
      for (int j = 0; j < 16; ++j) probs[row][j] = round_to<bf16>(p[j]);
      v8::F a[8];
      for (int c = 0; c < 8; ++c) a[c] = v8::load(acc[row] + 8 * c);
      if (corr != 1.f)
        for (int c = 0; c < 8; ++c) a[c] = v8::mul(a[c], v8::set1(corr));
      for (int pr = 0; pr < 8; ++pr) {
        const v8::F odd = v8::set1(probs[row][2 * pr + 1]), even = v8::set1(probs[row][2 * pr]);
        for (int c = 0; c < 8; ++c) {
          a[c] = v8::fma(odd, v8::load(values[2 * pr + 1] + 8 * c), a[c]);
          a[c] = v8::fma(even, v8::load(values[2 * pr] + 8 * c), a[c]);
        }
      }
      for (int c = 0; c < 8; ++c) v8::store(acc[row] + 8 * c, a[c]);
    }
  }
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t pos = row / group, g = row % group;
    uint16_t* o = op + ((i0 + pos) * hq + h * group + g) * D;
    const float inv = 1.f / l[row];
    for (int d = 0; d < 64; ++d) o[d] = bf16_bits(acc[row][d] * inv);
  }
}

#endif

// Task bounds for `parts` threads: shares of about equal key rows (a tile late in the chunk reads more
// keys than an early one).
inline std::vector<int64_t> tile_shares(int64_t tiles, int64_t hkv, int64_t p0, int64_t parts) {
  std::vector<int64_t> cost(tiles * hkv);
  for (int64_t task = 0; task < tiles * hkv; ++task) cost[task] = p0 + (task / hkv + 1) * kTile;
  return balanced_bounds(cost, parts);
}

}  // namespace kern
