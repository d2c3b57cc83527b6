// The quantized matmul's arithmetic (see `quant_matmul.cpp` for what it computes and the weight layout),
// in plain C++ with one SIMD path per ISA level and no ATen: `quant_matmul.cpp` binds it to tensors, and
// `tests/csrc/quant_core_check.cpp` compiles it alone for every level, ARM64 (NEON, with and without
// dotprod) included, and checks each path against the scalar one, bit for bit.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>


namespace quant {

// Activation rows quantized per group of 32 inputs, as `quant_matmul` multiplies them: codes [M, K]
// int8, scale [M, K / 32] (the group's step), sum [M, K / 32] (step x the sum of the group's codes),
// total [M, K / 32] (that sum of codes itself, exact) and low_total [M, K / 32] (the sum of the
// group's first 16 codes, for weights with a scale per half group).
struct QuantizedRows {
  std::vector<int8_t> codes;
  std::vector<float> scale, sum;
  std::vector<int32_t> total, low_total;
};

// An IEEE half's bits as a float (exact): what F16C's vcvtph2ps computes, for the scalar path.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

constexpr int64_t kTile = 16;
constexpr int64_t kGroup = 32;
constexpr int64_t kRowsPerPass = 8;  // activation rows per pass over a tile: 8 accumulators + 8 codes fit


// Rows [begin, end) of x [M, K] quantized per group of 32 into `rows` (laid out for K inputs).
template <typename T>
void quantize_range(const T* x, int64_t k, QuantizedRows& rows, int64_t begin, int64_t end) {
  const int64_t groups = k / kGroup;
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      float v[kGroup];
      float amax = 0.f;
      for (int64_t j = 0; j < kGroup; ++j) {
        v[j] = static_cast<float>(x[r * k + g * kGroup + j]);
        amax = std::max(amax, std::fabs(v[j]));
      }
      const float scale = amax / 127.f;
      const float inverse = scale > 0.f ? 1.f / scale : 0.f;
      int8_t* codes = rows.codes.data() + r * k + g * kGroup;
      int32_t total = 0, low_total = 0;
      for (int64_t j = 0; j < kGroup; ++j) {
        codes[j] = static_cast<int8_t>(std::nearbyint(v[j] * inverse));
        total += codes[j];
        if (j < kGroup / 2) low_total += codes[j];
      }
      rows.scale[r * groups + g] = scale;
      rows.sum[r * groups + g] = scale * static_cast<float>(total);
      rows.total[r * groups + g] = total;
      rows.low_total[r * groups + g] = low_total;
    }
  }
}

// The weight formats (`Format`, a template argument): 4-bit codes (kFour), 5-bit codes (kFive: GGUF
// Q5_0, Q5_1, Q5_K), 8-bit codes (kEight), and 6- or 8-bit codes whose group halves (inputs 0-15 and
// 16-31) have a scale and minimum each (kSixHalves, kEightHalves: GGUF Q6_K's sub-blocks of 16
// weights; 8 bits when such a part is fused with an 8-bit one). Scales per group and tile: d, then m,
// of the 16 rows (fp16); with halves, d and m of the low half, then d and m of the high half. A 5- or
// 6-bit group is a 4-bit one (its codes' low nibbles) followed by 64 bytes of fifth bits, then for 6
// bits 64 bytes of sixth bits: for chunk s (inputs 4s..4s+3), 8 bytes whose bit 4 i + j is that bit of
// input 4s + j of row i, so one 64-bit mask covers a chunk's 64 codes.
constexpr int kFour = 4, kFive = 5, kEight = 8, kSixHalves = 12, kEightHalves = 16;
template <int Format>
constexpr int kCodeBits = Format == kFour ? 4 : Format == kFive ? 5 : Format == kSixHalves ? 6 : 8;
constexpr int64_t kNibbleBytes = 4 * 64;  // a group's nibbles: where its bit planes start
template <int Format>
constexpr int kPlanes = kCodeBits<Format> < 8 ? kCodeBits<Format> - 4 : 0;  // bit planes after the nibbles
template <int Format>
constexpr bool kHalves = Format == kEightHalves || Format == kSixHalves;
template <int Format>
constexpr int64_t kGroupScales = kHalves<Format> ? 64 : 32;

// Bytes of one group of one tile.
template <int Format>
constexpr int64_t kGroupBytes = kCodeBits<Format> * kTile * kGroup / 8;

// The code of input k (0..31 within its group) of lane `lane`, from one group's bytes of a tile.
template <int Format>
inline int code_at(const uint8_t* group_codes, int64_t lane, int64_t k) {
  const int64_t quad = k / 4, j = k % 4;
  if (kCodeBits<Format> == 8) return group_codes[quad * 64 + lane * 4 + j];
  const uint8_t byte = group_codes[(quad % 4) * 64 + lane * 4 + j];
  int code = quad < 4 ? (byte & 0x0F) : (byte >> 4);
  const int64_t bit = lane * 4 + j;
  for (int plane = 0; plane < kPlanes<Format>; ++plane)
    code |= ((group_codes[kNibbleBytes + plane * 64 + quad * 8 + bit / 8] >> (bit % 8)) & 1) << (4 + plane);
  return code;
}

// Bit 4 + `plane` of chunk s's codes for the 8 rows 8h..8h+7 (bit 4 i + j: input 4s + j of row 8h + i).
inline uint32_t plane_bits(const uint8_t* group_codes, int plane, int64_t s, int64_t h) {
  uint32_t bits;
  std::memcpy(&bits, group_codes + kNibbleBytes + plane * 64 + s * 8 + h * 4, 4);
  return bits;
}

// `tile_pass` in plain scalar code, the reference every SIMD path equals bit for bit: the portable
// build's path, and the one `tests/csrc/quant_core_check.cpp` compares the others against.
template <int Format, int Rows>
void tile_pass_scalar(const uint8_t* codes, const uint16_t* scales, int64_t groups, const QuantizedRows& act,
                      int64_t first_row, int64_t k, float* y) {
  for (int r = 0; r < Rows; ++r) {
    const int64_t row = first_row + r;
    for (int64_t lane = 0; lane < kTile; ++lane) {
      float total = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot[2] = {0, 0};  // over inputs 0-15 and 16-31
        const int8_t* xq = act.codes.data() + row * k + g * kGroup;
        for (int64_t j = 0; j < kGroup; ++j)
          dot[j / 16] += code_at<Format>(codes + g * kGroupBytes<Format>, lane, j) * xq[j];
        const uint16_t* gs = scales + g * kGroupScales<Format>;
        const int64_t at = row * groups + g;
        if (kHalves<Format>) {
          const float da = act.scale[at];
          total = std::fma(static_cast<float>(dot[0]), half_to_float(gs[lane]) * da, total);
          total = std::fma(static_cast<float>(dot[1]), half_to_float(gs[32 + lane]) * da, total);
          total = std::fma(half_to_float(gs[16 + lane]), da * static_cast<float>(act.low_total[at]), total);
          total = std::fma(half_to_float(gs[48 + lane]), da * static_cast<float>(act.total[at] - act.low_total[at]), total);
        } else {
          total = std::fma(static_cast<float>(dot[0] + dot[1]), half_to_float(gs[lane]) * act.scale[at], total);
          total = std::fma(half_to_float(gs[16 + lane]), act.sum[at], total);
        }
      }
      y[r * kTile + lane] = total;
    }
  }
}

#if defined(SARATHI_AVX2)
// `value` in byte b where bit b of `bits` is set, else 0: a chunk's plane bits (`plane_bits`) as code values.
inline __m256i bytes_where(uint32_t bits, int value) {
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                                             _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                                                0x0303030303030303));  // byte b: byte b / 8
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));  // byte b: bit b % 8
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select),
                          _mm256_set1_epi8(static_cast<char>(value)));
}

// `tile_pass` on AVX2 for a full pass of kRowsPerPass rows, chunk by chunk: each chunk's weights meet
// every row's activations while they sit in registers (the rows' integer sums: Rows registers), and
// the fp32 accumulators wait in memory. Holding a group's eight weight vectors and the accumulators in
// AVX2's 16 registers spilled the weights, one load per product (load-bound at 16 rows); with few rows
// the accumulators' round trip through memory costs more than it saves, so those keep `tile_pass`'s
// own loop. The same integer sums and fp32 fma chain: the same bits.
template <int Format, int Rows>
void tile_pass_avx2_by_chunk(const uint8_t* codes, const uint16_t* scales, int64_t groups, const QuantizedRows& act,
                             int64_t first_row, int64_t k, float* y) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int8_t* xq0 = act.codes.data() + first_row * k;
  for (int half = 0; half < 2; ++half) {
    alignas(32) float acc[Rows][8] = {};
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* gc = codes + g * kGroupBytes<Format> + half * 32;
      const int8_t* xg = xq0 + g * kGroup;
      auto activations = [&](int r, int s) {  // row r's inputs 4s .. 4s + 3 of the group, in every lane
        int32_t quad;
        std::memcpy(&quad, xg + r * k + 4 * s, 4);
        return _mm256_set1_epi32(quad);
      };
      __m256i dot[Rows];
      if (kCodeBits<Format> == 8) {
        for (int r = 0; r < Rows; ++r) dot[r] = _mm256_setzero_si256();
        for (int s = 0; s < 8; ++s) {
          const __m256i w = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64)), flip);
          const __m256i magnitude = _mm256_sign_epi8(w, w);
          for (int r = 0; r < Rows; ++r) {
            const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(activations(r, s), w));
            dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(pairs, ones));
          }
        }
        for (int r = 0; r < Rows; ++r)
          dot[r] = _mm256_add_epi32(dot[r], _mm256_set1_epi32(128 * act.total[(first_row + r) * groups + g]));
      } else if (kCodeBits<Format> == 4) {
        __m256i pairs[Rows];
        for (int r = 0; r < Rows; ++r) pairs[r] = _mm256_setzero_si256();
        for (int s = 0; s < 4; ++s) {
          const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64));
          const __m256i low = _mm256_and_si256(raw, low_nibble);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibble);
          for (int r = 0; r < Rows; ++r) {
            pairs[r] = _mm256_add_epi16(pairs[r], _mm256_maddubs_epi16(low, activations(r, s)));
            pairs[r] = _mm256_add_epi16(pairs[r], _mm256_maddubs_epi16(high, activations(r, s + 4)));
          }
        }
        for (int r = 0; r < Rows; ++r) dot[r] = _mm256_madd_epi16(pairs[r], ones);
      } else {  // 5-bit: two chunks' pair sums (at most 2 x 2 x 31 x 127) widen before the next two
        const uint8_t* group = codes + g * kGroupBytes<Format>;
        for (int r = 0; r < Rows; ++r) dot[r] = _mm256_setzero_si256();
        for (int s = 0; s < 4; ++s) {
          const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64));
          const __m256i low = _mm256_or_si256(_mm256_and_si256(raw, low_nibble), bytes_where(plane_bits(group, 0, s, half), 16));
          const __m256i high = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibble),
                                               bytes_where(plane_bits(group, 0, s + 4, half), 16));
          for (int r = 0; r < Rows; ++r) {
            const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(low, activations(r, s)),
                                                   _mm256_maddubs_epi16(high, activations(r, s + 4)));
            dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
      const uint16_t* gs = scales + g * kGroupScales<Format> + half * 8;
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gs)));
      const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gs + 16)));
      for (int r = 0; r < Rows; ++r) {
        const int64_t at = (first_row + r) * groups + g;
        __m256 a = _mm256_load_ps(acc[r]);
        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), _mm256_mul_ps(d, _mm256_set1_ps(act.scale[at])), a);
        _mm256_store_ps(acc[r], _mm256_fmadd_ps(m, _mm256_set1_ps(act.sum[at]), a));
      }
    }
    for (int r = 0; r < Rows; ++r) std::memcpy(y + r * kTile + half * 8, acc[r], sizeof(acc[r]));
  }
}
#endif

// One tile's 16 outputs for `rows` activation rows (at most kRowsPerPass), into y [rows, 16] fp32.
//
// Every level computes the same bits: each group's dot product is an exact int32, and each output's
// fp32 accumulator takes the groups in order as acc = fma(dot, d * da, acc), then acc = fma(m, da sum, acc);
// with half-group scales, fma(dot_low, d_low da), fma(dot_high, d_high da), fma(m_low, da sum_low),
// fma(m_high, da sum_high), the sums of the activation codes exact integers (`QuantizedRows`).
template <int Format, int Rows>
void tile_pass(const uint8_t* codes, const uint16_t* scales, int64_t groups, const QuantizedRows& act,
               int64_t first_row, int64_t k, float* y) {
#if defined(SARATHI_AVX512)
  __m512 acc[Rows];
  for (int r = 0; r < Rows; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gc = codes + g * kGroupBytes<Format>;
    __m512i w[8];
    if (kCodeBits<Format> == 8) {
      for (int s = 0; s < 8; ++s) w[s] = _mm512_loadu_si512(gc + s * 64);
    } else {
      for (int s = 0; s < 4; ++s) {
        const __m512i raw = _mm512_loadu_si512(gc + s * 64);
        w[s] = _mm512_and_si512(raw, low_nibble);
        w[s + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low_nibble);
      }
      for (int plane = 0; plane < kPlanes<Format>; ++plane) {
        for (int s = 0; s < 8; ++s) {
          uint64_t bits;
          std::memcpy(&bits, gc + kNibbleBytes + plane * 64 + s * 8, 8);
          w[s] = _mm512_mask_add_epi8(w[s], static_cast<__mmask64>(bits), w[s], _mm512_set1_epi8(static_cast<char>(16 << plane)));
        }
      }
    }
    const __m256i* gs = reinterpret_cast<const __m256i*>(scales + g * kGroupScales<Format>);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(gs));
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256(gs + 1));
    // The rows' dot products side by side, so consecutive `vpdpbusd`s never wait on each other; with
    // half-group scales, chunks 4-7 (inputs 16-31) go to dot_high.
    __m512i dot[Rows], dot_high[Rows];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) dot[r] = dot_high[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      __m512i* into = kHalves<Format> && s >= 4 ? dot_high : dot;
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r) {
        int32_t quad;
        std::memcpy(&quad, act.codes.data() + (first_row + r) * k + g * kGroup + 4 * s, 4);
        into[r] = _mm512_dpbusd_epi32(into[r], w[s], _mm512_set1_epi32(quad));
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const int64_t at = (first_row + r) * groups + g;
      const __m512 da = _mm512_set1_ps(act.scale[at]);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(d, da), acc[r]);
      if (kHalves<Format>) {
        const __m512 d_high = _mm512_cvtph_ps(_mm256_loadu_si256(gs + 2));
        const __m512 m_high = _mm512_cvtph_ps(_mm256_loadu_si256(gs + 3));
        const float low = static_cast<float>(act.low_total[at]), high = static_cast<float>(act.total[at] - act.low_total[at]);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_high[r]), _mm512_mul_ps(d_high, da), acc[r]);
        acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(act.scale[at] * low), acc[r]);
        acc[r] = _mm512_fmadd_ps(m_high, _mm512_set1_ps(act.scale[at] * high), acc[r]);
      } else {
        acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(act.sum[at]), acc[r]);
      }
    }
  }
  for (int r = 0; r < Rows; ++r) _mm512_storeu_ps(y + r * kTile, acc[r]);
#elif defined(SARATHI_AVX2)
  if constexpr (Rows == kRowsPerPass && !kHalves<Format>) {
    tile_pass_avx2_by_chunk<Format, Rows>(codes, scales, groups, act, first_row, k, y);
    return;
  }
  // Half a tile (8 outputs, 32 bytes of each 64-byte chunk) at a time. `vpmaddubsw` multiplies
  // unsigned weight bytes by signed activation bytes into int16 pair sums, `vpmaddwd` by ones widens
  // them to int32, as llama.cpp's AVX2 Q4_1 x Q8_1 does. 4-bit: a pair sum is at most 2 x 15 x 127,
  // so the eight chunks of a group add up in int16 (30480 < 2^15) before one widening. 8-bit codes
  // would saturate int16, so they run as signed q = c - 128 (|q| times sign-moved activations, at most
  // 2 x 128 x 127) and get 128 x the group's activation sum back as an exact integer.
  const __m256i low_nibble = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int half = 0; half < 2; ++half) {
    __m256 acc[Rows];
    for (int r = 0; r < Rows; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* gc = codes + g * kGroupBytes<Format> + half * 32;
      __m256i w[8];
      if (kCodeBits<Format> == 8) {
        for (int s = 0; s < 8; ++s)
          w[s] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64)), flip);
      } else {
        for (int s = 0; s < 4; ++s) {
          const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64));
          w[s] = _mm256_and_si256(raw, low_nibble);
          w[s + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibble);
        }
        for (int plane = 0; plane < kPlanes<Format>; ++plane)
          for (int s = 0; s < 8; ++s)
            w[s] = _mm256_or_si256(w[s], bytes_where(plane_bits(codes + g * kGroupBytes<Format>, plane, s, half), 16 << plane));
      }
      const uint16_t* gs = scales + g * kGroupScales<Format> + half * 8;
      auto widen = [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
      const __m256 d = widen(gs), m = widen(gs + 16);
      for (int r = 0; r < Rows; ++r) {
        const int8_t* xq = act.codes.data() + (first_row + r) * k + g * kGroup;
        const int64_t at = (first_row + r) * groups + g;
        __m256i dot, dot_high = _mm256_setzero_si256();  // dot_high: inputs 16-31 under half-group scales
        if (kCodeBits<Format> == 8) {
          dot = _mm256_setzero_si256();
          for (int s = 0; s < 8; ++s) {
            int32_t quad;
            std::memcpy(&quad, xq + 4 * s, 4);
            const __m256i x = _mm256_set1_epi32(quad);
            const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w[s], w[s]), _mm256_sign_epi8(x, w[s]));
            __m256i& into = kHalves<Format> && s >= 4 ? dot_high : dot;
            into = _mm256_add_epi32(into, _mm256_madd_epi16(pairs, ones));
          }
          if (kHalves<Format>) {
            dot = _mm256_add_epi32(dot, _mm256_set1_epi32(128 * act.low_total[at]));
            dot_high = _mm256_add_epi32(dot_high, _mm256_set1_epi32(128 * (act.total[at] - act.low_total[at])));
          } else {
            dot = _mm256_add_epi32(dot, _mm256_set1_epi32(128 * act.total[at]));
          }
        } else if (kCodeBits<Format> == 4) {
          __m256i pairs = _mm256_setzero_si256();
          for (int s = 0; s < 8; ++s) {
            int32_t quad;
            std::memcpy(&quad, xq + 4 * s, 4);
            pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w[s], _mm256_set1_epi32(quad)));
          }
          dot = _mm256_madd_epi16(pairs, ones);
        } else {  // 5- and 6-bit codes: two chunks' pair sums at a time (at most 2 x 2 x 63 x 127 < 2^15)
          dot = _mm256_setzero_si256();
          for (int s = 0; s < 8; s += 2) {
            int32_t quads[2];
            std::memcpy(quads, xq + 4 * s, 8);
            const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(w[s], _mm256_set1_epi32(quads[0])),
                                                   _mm256_maddubs_epi16(w[s + 1], _mm256_set1_epi32(quads[1])));
            __m256i& into = kHalves<Format> && s >= 4 ? dot_high : dot;
            into = _mm256_add_epi32(into, _mm256_madd_epi16(pairs, ones));
          }
        }
        const __m256 da = _mm256_set1_ps(act.scale[at]);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(d, da), acc[r]);
        if (kHalves<Format>) {
          const float low = static_cast<float>(act.low_total[at]), high = static_cast<float>(act.total[at] - act.low_total[at]);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_high), _mm256_mul_ps(widen(gs + 32), da), acc[r]);
          acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(act.scale[at] * low), acc[r]);
          acc[r] = _mm256_fmadd_ps(widen(gs + 48), _mm256_set1_ps(act.scale[at] * high), acc[r]);
        } else {
          acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(act.sum[at]), acc[r]);
        }
      }
    }
    for (int r = 0; r < Rows; ++r) _mm256_storeu_ps(y + r * kTile + half * 8, acc[r]);
  }
#elif defined(SARATHI_NEON)
  // A quarter of a tile (4 outputs, 16 bytes of each 64-byte chunk) at a time. With dotprod, `sdot`
  // sums 4 signed byte products per lane (the 4-bit codes fit int8); without, `smull` + pairwise adds.
  // 8-bit codes run as signed q = c - 128, with 128 x the group's activation sum added back, as AVX2.
  for (int quarter = 0; quarter < 4; ++quarter) {
    float32x4_t acc[Rows];
    for (int r = 0; r < Rows; ++r) acc[r] = vdupq_n_f32(0.f);
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* gc = codes + g * kGroupBytes<Format> + quarter * 16;
      int8x16_t w[8];
      if (kCodeBits<Format> == 8) {
        for (int s = 0; s < 8; ++s) w[s] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(gc + s * 64), vdupq_n_u8(0x80)));
      } else {
        for (int s = 0; s < 4; ++s) {
          const uint8x16_t raw = vld1q_u8(gc + s * 64);
          w[s] = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F)));
          w[s + 4] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
        }
        const uint8x16_t select = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        for (int plane = 0; plane < kPlanes<Format>; ++plane) {
          for (int s = 0; s < 8; ++s) {  // bits 16 q .. 16 q + 15 of the chunk's 64: byte b takes bit b
            const uint8_t* bits = codes + g * kGroupBytes<Format> + kNibbleBytes + plane * 64 + s * 8 + quarter * 2;
            const uint8x16_t spread = vcombine_u8(vdup_n_u8(bits[0]), vdup_n_u8(bits[1]));
            const uint8x16_t set = vandq_u8(vtstq_u8(spread, select), vdupq_n_u8(static_cast<uint8_t>(16 << plane)));
            w[s] = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(w[s]), set));
          }
        }
      }
      const uint16_t* gs = scales + g * kGroupScales<Format> + quarter * 4;
      auto widen = [](const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); };
      const float32x4_t d = widen(gs), m = widen(gs + 16);
      for (int r = 0; r < Rows; ++r) {
        const int8_t* xq = act.codes.data() + (first_row + r) * k + g * kGroup;
        int32x4_t dot = vdupq_n_s32(0), dot_high = vdupq_n_s32(0);  // dot_high: inputs 16-31 under half-group scales
        for (int s = 0; s < 8; ++s) {
          int32_t quad;
          std::memcpy(&quad, xq + 4 * s, 4);
          const int8x16_t x = vreinterpretq_s8_s32(vdupq_n_s32(quad));
          int32x4_t& into = kHalves<Format> && s >= 4 ? dot_high : dot;
#if defined(__ARM_FEATURE_DOTPROD)
          into = vdotq_s32(into, w[s], x);
#else
          const int32x4_t low = vpaddlq_s16(vmull_s8(vget_low_s8(w[s]), vget_low_s8(x)));
          const int32x4_t high = vpaddlq_s16(vmull_high_s8(w[s], x));
          into = vaddq_s32(into, vpaddq_s32(low, high));
#endif
        }
        const int64_t at = (first_row + r) * groups + g;
        if (kHalves<Format>) {
          const int32_t low = act.low_total[at], high = act.total[at] - act.low_total[at];
          if (kCodeBits<Format> == 8) {  // codes run as c - 128: 128 x the activations' sums back
            dot = vaddq_s32(dot, vdupq_n_s32(128 * low));
            dot_high = vaddq_s32(dot_high, vdupq_n_s32(128 * high));
          }
          acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot), vmulq_n_f32(d, act.scale[at]));
          acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot_high), vmulq_n_f32(widen(gs + 32), act.scale[at]));
          acc[r] = vfmaq_f32(acc[r], m, vdupq_n_f32(act.scale[at] * static_cast<float>(low)));
          acc[r] = vfmaq_f32(acc[r], widen(gs + 48), vdupq_n_f32(act.scale[at] * static_cast<float>(high)));
        } else {
          if (kCodeBits<Format> == 8) dot = vaddq_s32(dot, vdupq_n_s32(128 * act.total[at]));
          acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot), vmulq_n_f32(d, act.scale[at]));
          acc[r] = vfmaq_f32(acc[r], m, vdupq_n_f32(act.sum[at]));
        }
      }
    }
    for (int r = 0; r < Rows; ++r) vst1q_f32(y + r * kTile + quarter * 4, acc[r]);
  }
#else
  tile_pass_scalar<Format, Rows>(codes, scales, groups, act, first_row, k, y);
#endif
}

using TilePass = void (*)(const uint8_t*, const uint16_t*, int64_t, const QuantizedRows&, int64_t, int64_t, float*);
template <int Format>
constexpr TilePass kPasses[kRowsPerPass] = {tile_pass<Format, 1>, tile_pass<Format, 2>, tile_pass<Format, 3>,
                                            tile_pass<Format, 4>, tile_pass<Format, 5>, tile_pass<Format, 6>,
                                            tile_pass<Format, 7>, tile_pass<Format, 8>};

// Output tiles [begin, end) of the quantized rows act [M, K] @ w.T into out [M, N]: codes cp
// [ceil(N / 16), K / 32, group bytes], scales sp [ceil(N / 16), K / 32, kGroupScales] fp16 bits.
template <typename T, int Format>
void matmul_tiles(const QuantizedRows& act, int64_t m, int64_t k, const uint8_t* cp, const uint16_t* sp, int64_t n,
                  T* op, int64_t begin, int64_t end) {
  const int64_t groups = k / kGroup;
  float y[kRowsPerPass * kTile];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t width = std::min(kTile, n - t * kTile);
    for (int64_t first = 0; first < m; first += kRowsPerPass) {
      const int64_t rows = std::min(kRowsPerPass, m - first);
      kPasses<Format>[rows - 1](cp + t * groups * kGroupBytes<Format>, sp + t * groups * kGroupScales<Format>, groups, act,
                                first, k, y);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t lane = 0; lane < width; ++lane)
          op[(first + r) * n + t * kTile + lane] = static_cast<T>(y[r * kTile + lane]);
    }
  }
}


}  // namespace quant
