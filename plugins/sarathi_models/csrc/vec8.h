// Eight fp32 lanes: the vector the attention, norm and residual kernels are written in below the
// avx512 level, with one backend per ISA (AVX2 + FMA, ARM64 NEON, scalar), so one kernel source gives
// the avx2, neon and portable builds and every one computes the same bits as the AVX-512 code.
//
// The operations are the AVX-512 kernels' arithmetic taken apart: a 16-lane AVX-512 vector is a pair
// (lo, hi) of these (lanes 0-7 and 8-15); vdpbf16ps is two fmas (`dpbf16`, in the order Zen 4 rounds
// them); the reduction trees are GCC's _mm512_reduce_add_ps (`reduce_add16`) and the decode kernel's
// transpose tree (`sum16_row`). Every operation is IEEE-exact lane by lane (add, mul, fused multiply-add,
// round to nearest even), so the three backends agree bit for bit (`tests/csrc/kernels_check.cpp`).
#pragma once

#include "isa.h"
#include "simd.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kern::v8 {

#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)

struct F {  // 8 fp32 lanes
  __m256 v;
};
struct P {  // 8 32-bit lanes, each a pair of bf16 values (the even element in the low half)
  __m256i v;
};

inline F zero() { return {_mm256_setzero_ps()}; }
inline F set1(float x) { return {_mm256_set1_ps(x)}; }
inline F load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, F x) { _mm256_storeu_ps(p, x.v); }
inline F add(F a, F b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F sub(F a, F b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F mul(F a, F b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F fma(F a, F b, F c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }  // a b + c, rounded once
inline P load_pairs(const void* p) { return {_mm256_loadu_si256(static_cast<const __m256i*>(p))}; }
inline P set1_pairs(uint32_t bits) { return {_mm256_set1_epi32(static_cast<int>(bits))}; }

// 8 bf16 values (16 bytes at p) widened to fp32 (exact: the bits shifted up).
inline F load_bf16(const void* p) {
  const __m128i bits = _mm_loadu_si128(static_cast<const __m128i*>(p));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16))};
}

// 8 lanes rounded to bf16 as c10::BFloat16 rounds (to nearest even; a NaN becomes 0x7FC0), 16 bytes at p.
inline void store_bf16(void* p, F x) {
  const __m256i bits = _mm256_castps_si256(x.v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x.v, x.v, _CMP_UNORD_Q));
  rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), nan);
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
  _mm_storeu_si128(static_cast<__m128i*>(p), packed);
}

// Lane i: the code in bits [shift, shift + width) of the 32-bit word at p + 4 i, as fp32 (exact): one
// input of 8 rows of a quantized weight tile (`dequant_core.h`).
inline F codes(const uint8_t* p, int shift, uint32_t mask) {
  const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i code = _mm256_and_si256(_mm256_srl_epi32(words, _mm_cvtsi32_si128(shift)), _mm256_set1_epi32(static_cast<int>(mask)));
  return {_mm256_cvtepi32_ps(code)};
}
// Lane i: `value` if bit 4 i + j of `bits` is set, else 0 (exact): a bit plane of input j of 8 rows of
// a 5- or 6-bit tile (`quant_core.h`'s `plane_bits`), as code values.
inline F plane_values(uint32_t bits, int j, int value) {
  const __m256i shifts = _mm256_add_epi32(_mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), _mm256_set1_epi32(j));
  const __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(bits)), shifts), _mm256_set1_epi32(1));
  return {_mm256_cvtepi32_ps(_mm256_mullo_epi32(bit, _mm256_set1_epi32(value)))};
}

// exp_nonpositive (simd.h) on 8 lanes: max with -87 (a NaN gives -87, as maxps does), n = x log2(e)
// rounded to nearest even, r = x - n ln2 in two fused steps, the degree-6 polynomial, times 2^n
// (scalef's result: 2^n is normal for n >= -126).
inline F exp_nonpositive(F in) {
  const __m256 x = _mm256_max_ps(in.v, _mm256_set1_ps(-87.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return {_mm256_mul_ps(p, _mm256_castsi256_ps(two_n))};
}

// vdpbf16ps on 8 lanes: acc + odd products, rounded, + even products, rounded (how Zen 4 computes it:
// checked on 3.2 million random lanes, all equal). bf16 products are exact in fp32, so each step is
// one rounding of a sum.
inline F dpbf16(F acc, P a, P b) {
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m256 a_odd = _mm256_castsi256_ps(_mm256_and_si256(a.v, high));
  const __m256 b_odd = _mm256_castsi256_ps(_mm256_and_si256(b.v, high));
  const __m256 a_even = _mm256_castsi256_ps(_mm256_slli_epi32(a.v, 16));
  const __m256 b_even = _mm256_castsi256_ps(_mm256_slli_epi32(b.v, 16));
  return {_mm256_fmadd_ps(a_even, b_even, _mm256_fmadd_ps(a_odd, b_odd, acc.v))};
}

// _mm512_reduce_add_ps's tree on the 16 lanes (lo, hi): hi + lo, then the 128-bit halves, then lanes
// (0, 2) and (1, 3), then the two.
inline float reduce_add16(F lo, F hi) {
  const __m256 t3 = _mm256_add_ps(hi.v, lo.v);
  const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
  const __m128 t8 = _mm_add_ps(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

// The sum the AVX-512 decode kernel's `sum16` tree gives one row of 16 lanes x: per block b of four
// lanes, P_b = (x[4b] + x[4b+2]) + (x[4b+1] + x[4b+3]); then (P0 + P1) + (P2 + P3).
inline float sum16_row(F lo, F hi) {
  auto blocks = [](__m256 v) {  // lane 0 of each 128-bit half: that block's P; their sum
    const __m256 t = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m256 u = _mm256_add_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_add_ss(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
  };
  return _mm_cvtss_f32(_mm_add_ss(blocks(lo.v), blocks(hi.v)));
}

#elif defined(SARATHI_NEON)

struct F {  // 8 fp32 lanes: 0-3 and 4-7
  float32x4_t lo, hi;
};
struct P {  // 8 32-bit lanes, each a pair of bf16 values (the even element in the low half)
  uint32x4_t lo, hi;
};

inline F zero() { return {vdupq_n_f32(0.f), vdupq_n_f32(0.f)}; }
inline F set1(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
inline F load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
inline void store(float* p, F x) {
  vst1q_f32(p, x.lo);
  vst1q_f32(p + 4, x.hi);
}
inline F add(F a, F b) { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
inline F sub(F a, F b) { return {vsubq_f32(a.lo, b.lo), vsubq_f32(a.hi, b.hi)}; }
inline F mul(F a, F b) { return {vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)}; }
inline F fma(F a, F b, F c) { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }
inline P load_pairs(const void* p) {
  const uint32_t* u = static_cast<const uint32_t*>(p);
  return {vld1q_u32(u), vld1q_u32(u + 4)};
}
inline P set1_pairs(uint32_t bits) { return {vdupq_n_u32(bits), vdupq_n_u32(bits)}; }

inline F load_bf16(const void* p) {
  const uint16x8_t bits = vld1q_u16(static_cast<const uint16_t*>(p));
  return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(bits), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(bits, 16))};
}

inline uint16x4_t bf16_round4(float32x4_t x) {
  const uint32x4_t bits = vreinterpretq_u32_f32(x);
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(1));
  const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(bits, vaddq_u32(lsb, vdupq_n_u32(0x7FFF))), 16);
  return vmovn_u32(vbslq_u32(vceqq_f32(x, x), rounded, vdupq_n_u32(0x7FC0)));  // x == x: not a NaN
}
inline void store_bf16(void* p, F x) {
  vst1q_u16(static_cast<uint16_t*>(p), vcombine_u16(bf16_round4(x.lo), bf16_round4(x.hi)));
}

// Lane i: the code in bits [shift, shift + width) of the 32-bit word at p + 4 i, as fp32 (exact): one
// input of 8 rows of a quantized weight tile (`dequant_core.h`).
inline F codes(const uint8_t* p, int shift, uint32_t mask) {
  const int32x4_t right = vdupq_n_s32(-shift);
  const uint32x4_t lo = vandq_u32(vshlq_u32(vld1q_u32(reinterpret_cast<const uint32_t*>(p)), right), vdupq_n_u32(mask));
  const uint32x4_t hi = vandq_u32(vshlq_u32(vld1q_u32(reinterpret_cast<const uint32_t*>(p + 16)), right), vdupq_n_u32(mask));
  return {vcvtq_f32_u32(lo), vcvtq_f32_u32(hi)};
}
inline F plane_values(uint32_t bits, int j, int value) {  // see the AVX2 version
  const int32x4_t low = {-j, -(4 + j), -(8 + j), -(12 + j)}, high = {-(16 + j), -(20 + j), -(24 + j), -(28 + j)};
  const uint32x4_t word = vdupq_n_u32(bits), one = vdupq_n_u32(1);
  const uint32_t v = static_cast<uint32_t>(value);
  return {vcvtq_f32_u32(vmulq_n_u32(vandq_u32(vshlq_u32(word, low), one), v)),
          vcvtq_f32_u32(vmulq_n_u32(vandq_u32(vshlq_u32(word, high), one), v))};
}

inline float32x4_t exp_nonpositive4(float32x4_t in) {
  const float32x4_t x = vmaxnmq_f32(in, vdupq_n_f32(-87.f));  // a NaN gives -87, as maxps does
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.f / 720);
  p = vfmaq_f32(vdupq_n_f32(1.f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  const int32x4_t two_n = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(two_n));
}
inline F exp_nonpositive(F x) { return {exp_nonpositive4(x.lo), exp_nonpositive4(x.hi)}; }

inline float32x4_t dpbf16_4(float32x4_t acc, uint32x4_t a, uint32x4_t b) {
  const uint32x4_t high = vdupq_n_u32(0xFFFF0000u);
  acc = vfmaq_f32(acc, vreinterpretq_f32_u32(vandq_u32(a, high)), vreinterpretq_f32_u32(vandq_u32(b, high)));
  return vfmaq_f32(acc, vreinterpretq_f32_u32(vshlq_n_u32(a, 16)), vreinterpretq_f32_u32(vshlq_n_u32(b, 16)));
}
inline F dpbf16(F acc, P a, P b) { return {dpbf16_4(acc.lo, a.lo, b.lo), dpbf16_4(acc.hi, a.hi, b.hi)}; }

// (x[0] + x[2]) + (x[1] + x[3]) of one block of four lanes
inline float block_sum(float32x4_t x) {
  const float32x4_t t = vaddq_f32(x, vextq_f32(x, x, 2));
  return vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 1);
}
inline float reduce_add16(F lo, F hi) {
  const float32x4_t t6 = vaddq_f32(vaddq_f32(hi.hi, lo.hi), vaddq_f32(hi.lo, lo.lo));
  return block_sum(t6);
}
inline float sum16_row(F lo, F hi) {
  return (block_sum(lo.lo) + block_sum(lo.hi)) + (block_sum(hi.lo) + block_sum(hi.hi));
}

#else  // the portable build: the same operations one lane at a time

struct F {
  float v[8];
};
struct P {
  uint32_t v[8];
};

inline F zero() { return F{}; }
inline F set1(float x) {
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = x;
  return out;
}
inline F load(const float* p) {
  F out;
  std::memcpy(out.v, p, sizeof(out.v));
  return out;
}
inline void store(float* p, F x) { std::memcpy(p, x.v, sizeof(x.v)); }
template <typename Op>
inline F lanes(F a, F b, Op op) {
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = op(a.v[i], b.v[i]);
  return out;
}
inline F add(F a, F b) { return lanes(a, b, [](float x, float y) { return x + y; }); }
inline F sub(F a, F b) { return lanes(a, b, [](float x, float y) { return x - y; }); }
inline F mul(F a, F b) { return lanes(a, b, [](float x, float y) { return x * y; }); }
inline F fma(F a, F b, F c) {
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
  return out;
}
inline P load_pairs(const void* p) {
  P out;
  std::memcpy(out.v, p, sizeof(out.v));
  return out;
}
inline P set1_pairs(uint32_t bits) {
  P out;
  for (int i = 0; i < 8; ++i) out.v[i] = bits;
  return out;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline F load_bf16(const void* p) {
  uint16_t bits[8];
  std::memcpy(bits, p, sizeof(bits));
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = bits_float(static_cast<uint32_t>(bits[i]) << 16);
  return out;
}
inline void store_bf16(void* p, F x) {
  uint16_t bits[8];
  for (int i = 0; i < 8; ++i) bits[i] = bf16_bits(x.v[i]);
  std::memcpy(p, bits, sizeof(bits));
}
// Lane i: the code in bits [shift, shift + width) of the 32-bit word at p + 4 i, as fp32 (exact): one
// input of 8 rows of a quantized weight tile (`dequant_core.h`).
inline F codes(const uint8_t* p, int shift, uint32_t mask) {
  uint32_t words[8];
  std::memcpy(words, p, sizeof(words));
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = static_cast<float>((words[i] >> shift) & mask);
  return out;
}
inline F plane_values(uint32_t bits, int j, int value) {  // see the AVX2 version
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = static_cast<float>(((bits >> (4 * i + j)) & 1) * value);
  return out;
}
inline F exp_nonpositive(F x) {
  F out;
  for (int i = 0; i < 8; ++i) out.v[i] = exp_nonpositive_scalar(x.v[i]);
  return out;
}
inline F dpbf16(F acc, P a, P b) {
  for (int i = 0; i < 8; ++i) {
    const float odd = bits_float(a.v[i] & 0xFFFF0000u) * bits_float(b.v[i] & 0xFFFF0000u);  // exact
    const float even = bits_float(a.v[i] << 16) * bits_float(b.v[i] << 16);
    acc.v[i] = (acc.v[i] + odd) + even;
  }
  return acc;
}
inline float reduce_add16(F lo, F hi) {
  float part[16];
  std::memcpy(part, lo.v, sizeof(lo.v));
  std::memcpy(part + 8, hi.v, sizeof(hi.v));
  return kern::reduce_add16(part);
}
inline float sum16_row(F lo, F hi) {
  auto block = [](const float* x) { return (x[0] + x[2]) + (x[1] + x[3]); };
  return (block(lo.v) + block(lo.v + 4)) + (block(hi.v) + block(hi.v + 4));
}

#endif

}  // namespace kern::v8
