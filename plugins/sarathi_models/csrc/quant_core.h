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
// int8, scale [M, K / 32] (the group's step), sum [M, K / 32] (step x the sum of the group's codes)
// and total [M, K / 32] (that sum of codes itself, exact).
struct QuantizedRows {
  std::vector<int8_t> codes;
  std::vector<float> scale, sum;
  std::vector<int32_t> total;
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
      int32_t total = 0;
      for (int64_t j = 0; j < kGroup; ++j) {
        codes[j] = static_cast<int8_t>(std::nearbyint(v[j] * inverse));
        total += codes[j];
      }
      rows.scale[r * groups + g] = scale;
      rows.sum[r * groups + g] = scale * static_cast<float>(total);
      rows.total[r * groups + g] = total;
    }
  }
}

// Bytes of one group of one tile.
template <int Bits>
constexpr int64_t kGroupBytes = Bits * kTile * kGroup / 8;

// The code of input k (0..31 within its group) of lane `lane`, from one group's bytes of a tile.
template <int Bits>
inline int code_at(const uint8_t* group_codes, int64_t lane, int64_t k) {
  const int64_t quad = k / 4, j = k % 4;
  if (Bits == 8) return group_codes[quad * 64 + lane * 4 + j];
  const uint8_t byte = group_codes[(quad % 4) * 64 + lane * 4 + j];
  return quad < 4 ? (byte & 0x0F) : (byte >> 4);
}

// `tile_pass` in plain scalar code, the reference every SIMD path equals bit for bit: the portable
// build's path, and the one `tests/csrc/quant_core_check.cpp` compares the others against.
template <int Bits, int Rows>
void tile_pass_scalar(const uint8_t* codes, const uint16_t* scales, int64_t groups, const QuantizedRows& act,
                      int64_t first_row, int64_t k, float* y) {
  for (int r = 0; r < Rows; ++r) {
    const int64_t row = first_row + r;
    for (int64_t lane = 0; lane < kTile; ++lane) {
      float total = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot = 0;
        const int8_t* xq = act.codes.data() + row * k + g * kGroup;
        for (int64_t j = 0; j < kGroup; ++j) dot += code_at<Bits>(codes + g * kGroupBytes<Bits>, lane, j) * xq[j];
        const float d = half_to_float(scales[g * 32 + lane]), m = half_to_float(scales[g * 32 + 16 + lane]);
        total = std::fma(static_cast<float>(dot), d * act.scale[row * groups + g], total);
        total = std::fma(m, act.sum[row * groups + g], total);
      }
      y[r * kTile + lane] = total;
    }
  }
}

// One tile's 16 outputs for `rows` activation rows (at most kRowsPerPass), into y [rows, 16] fp32.
//
// Every level computes the same bits: each group's dot product is an exact int32, and each output's
// fp32 accumulator takes the groups in order as acc = fma(dot, d * da, acc), then acc = fma(m, da sum, acc).
template <int Bits, int Rows>
void tile_pass(const uint8_t* codes, const uint16_t* scales, int64_t groups, const QuantizedRows& act,
               int64_t first_row, int64_t k, float* y) {
#if defined(SARATHI_AVX512)
  __m512 acc[Rows];
  for (int r = 0; r < Rows; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gc = codes + g * kGroupBytes<Bits>;
    __m512i w[8];
    if (Bits == 8) {
      for (int s = 0; s < 8; ++s) w[s] = _mm512_loadu_si512(gc + s * 64);
    } else {
      for (int s = 0; s < 4; ++s) {
        const __m512i raw = _mm512_loadu_si512(gc + s * 64);
        w[s] = _mm512_and_si512(raw, low_nibble);
        w[s + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low_nibble);
      }
    }
    const __m256i* gs = reinterpret_cast<const __m256i*>(scales + g * 32);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(gs));
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256(gs + 1));
    // The rows' dot products side by side, so consecutive `vpdpbusd`s never wait on each other.
    __m512i dot[Rows];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) dot[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r) {
        int32_t quad;
        std::memcpy(&quad, act.codes.data() + (first_row + r) * k + g * kGroup + 4 * s, 4);
        dot[r] = _mm512_dpbusd_epi32(dot[r], w[s], _mm512_set1_epi32(quad));
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const int64_t at = (first_row + r) * groups + g;
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(d, _mm512_set1_ps(act.scale[at])), acc[r]);
      acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(act.sum[at]), acc[r]);
    }
  }
  for (int r = 0; r < Rows; ++r) _mm512_storeu_ps(y + r * kTile, acc[r]);
#elif defined(SARATHI_AVX2)
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
      const uint8_t* gc = codes + g * kGroupBytes<Bits> + half * 32;
      __m256i w[8];
      if (Bits == 8) {
        for (int s = 0; s < 8; ++s)
          w[s] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64)), flip);
      } else {
        for (int s = 0; s < 4; ++s) {
          const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gc + s * 64));
          w[s] = _mm256_and_si256(raw, low_nibble);
          w[s + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibble);
        }
      }
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + g * 32 + half * 8)));
      const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + g * 32 + 16 + half * 8)));
      for (int r = 0; r < Rows; ++r) {
        const int8_t* xq = act.codes.data() + (first_row + r) * k + g * kGroup;
        __m256i dot;
        if (Bits == 8) {
          dot = _mm256_setzero_si256();
          for (int s = 0; s < 8; ++s) {
            int32_t quad;
            std::memcpy(&quad, xq + 4 * s, 4);
            const __m256i x = _mm256_set1_epi32(quad);
            const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w[s], w[s]), _mm256_sign_epi8(x, w[s]));
            dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
          }
          dot = _mm256_add_epi32(dot, _mm256_set1_epi32(128 * act.total[(first_row + r) * groups + g]));
        } else {
          __m256i pairs = _mm256_setzero_si256();
          for (int s = 0; s < 8; ++s) {
            int32_t quad;
            std::memcpy(&quad, xq + 4 * s, 4);
            pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w[s], _mm256_set1_epi32(quad)));
          }
          dot = _mm256_madd_epi16(pairs, ones);
        }
        const int64_t at = (first_row + r) * groups + g;
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(d, _mm256_set1_ps(act.scale[at])), acc[r]);
        acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(act.sum[at]), acc[r]);
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
      const uint8_t* gc = codes + g * kGroupBytes<Bits> + quarter * 16;
      int8x16_t w[8];
      if (Bits == 8) {
        for (int s = 0; s < 8; ++s) w[s] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(gc + s * 64), vdupq_n_u8(0x80)));
      } else {
        for (int s = 0; s < 4; ++s) {
          const uint8x16_t raw = vld1q_u8(gc + s * 64);
          w[s] = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F)));
          w[s + 4] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
        }
      }
      const float32x4_t d = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + g * 32 + quarter * 4)));
      const float32x4_t m = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + g * 32 + 16 + quarter * 4)));
      for (int r = 0; r < Rows; ++r) {
        const int8_t* xq = act.codes.data() + (first_row + r) * k + g * kGroup;
        int32x4_t dot = vdupq_n_s32(0);
        for (int s = 0; s < 8; ++s) {
          int32_t quad;
          std::memcpy(&quad, xq + 4 * s, 4);
          const int8x16_t x = vreinterpretq_s8_s32(vdupq_n_s32(quad));
#if defined(__ARM_FEATURE_DOTPROD)
          dot = vdotq_s32(dot, w[s], x);
#else
          const int32x4_t low = vpaddlq_s16(vmull_s8(vget_low_s8(w[s]), vget_low_s8(x)));
          const int32x4_t high = vpaddlq_s16(vmull_high_s8(w[s], x));
          dot = vaddq_s32(dot, vpaddq_s32(low, high));
#endif
        }
        const int64_t at = (first_row + r) * groups + g;
        if (Bits == 8) dot = vaddq_s32(dot, vdupq_n_s32(128 * act.total[at]));
        acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(dot), vmulq_n_f32(d, act.scale[at]));
        acc[r] = vfmaq_f32(acc[r], m, vdupq_n_f32(act.sum[at]));
      }
    }
    for (int r = 0; r < Rows; ++r) vst1q_f32(y + r * kTile + quarter * 4, acc[r]);
  }
#else
  tile_pass_scalar<Bits, Rows>(codes, scales, groups, act, first_row, k, y);
#endif
}

using TilePass = void (*)(const uint8_t*, const uint16_t*, int64_t, const QuantizedRows&, int64_t, int64_t, float*);
template <int Bits>
constexpr TilePass kPasses[kRowsPerPass] = {tile_pass<Bits, 1>, tile_pass<Bits, 2>, tile_pass<Bits, 3>,
                                            tile_pass<Bits, 4>, tile_pass<Bits, 5>, tile_pass<Bits, 6>,
                                            tile_pass<Bits, 7>, tile_pass<Bits, 8>};

// Output tiles [begin, end) of the quantized rows act [M, K] @ w.T into out [M, N].
template <typename T, int Bits>
void matmul_tiles(const QuantizedRows& act, int64_t m, int64_t k, const uint8_t* cp, const uint16_t* sp, int64_t n,
                  T* op, int64_t begin, int64_t end) {
  const int64_t groups = k / kGroup;
  float y[kRowsPerPass * kTile];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t width = std::min(kTile, n - t * kTile);
    for (int64_t first = 0; first < m; first += kRowsPerPass) {
      const int64_t rows = std::min(kRowsPerPass, m - first);
      kPasses<Bits>[rows - 1](cp + t * groups * kGroupBytes<Bits>, sp + t * groups * 32, groups, act, first, k, y);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t lane = 0; lane < width; ++lane)
          op[(first + r) * n + t * kTile + lane] = static_cast<T>(y[r * kTile + lane]);
    }
  }
}


}  // namespace quant
