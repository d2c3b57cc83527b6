// Vector math the kernels share (decode attention in cpu_ops.cpp, prefill attention in
// prefill_attention.cpp, the residual adds of decode_stack.cpp), per ISA level (isa.h), inline.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// exp_nonpositive below, one value at a time, the same steps in the same roundings (fma where the
// vector code fuses), so scalar code (the portable build, loops the compiler vectorizes) gives its bits.
inline float exp_nonpositive_scalar(float x) {
  x = std::max(x, -87.f);
  const float n = std::nearbyint(x * 1.44269504f);
  float r = std::fma(-n, 0.693359375f, x);
  r = std::fma(-n, -2.12194440e-4f, r);
  float p = 1.f / 720;
  p = std::fma(p, r, 1.f / 120);
  p = std::fma(p, r, 1.f / 24);
  p = std::fma(p, r, 1.f / 6);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.f);
  p = std::fma(p, r, 1.f);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, 4);
  return p * two_n;
}

// 16 partial sums added up in _mm512_reduce_add_ps's tree (GCC's avx512fintrin.h): lanes i and i + 8,
// then i and i + 4, then (0, 2) and (1, 3), then the two. Every level's reductions end in this tree.
inline float reduce_add16(const float* part) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = part[i + 8] + part[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[i + 4] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

#if defined(SARATHI_AVX512)
// e^x for x <= 0 (softmax after the max is subtracted), 16 lanes: 2^n * p(r) with x = n ln2 + r,
// |r| <= ln2 / 2, p a degree-6 Taylor polynomial (relative error under 2e-7, as libm's expf).
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

#if defined(SARATHI_AVX2)
// 8 bf16 values (16 bytes at p) widened to fp32 (exact: the bits shifted up).
inline __m256 load_bf16x8(const void* p) {
  const __m128i bits = _mm_loadu_si128(static_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}

// 8 fp32 values rounded to bf16 as c10::BFloat16 rounds them (to nearest even; a NaN becomes 0x7FC0),
// stored as 16 bytes at p.
inline void store_bf16x8(void* p, __m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), nan);
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
  _mm_storeu_si128(static_cast<__m128i*>(p), packed);
}
#endif

#if defined(SARATHI_AVX2)
// The AVX2 twins of the AVX-512 arithmetic above, operation for operation, so that the avx2 build
// computes the same bits as the avx512 one (isa.h). A 16-lane AVX-512 vector is a pair (lo, hi) of
// 8-lane ones here: lanes 0-7 and 8-15.

// exp_nonpositive on 8 lanes: the same steps (round to nearest, two-part ln 2, the same polynomial);
// scalef(p, n) is p * 2^n, exact here since n >= -126 keeps 2^n normal.
inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
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
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

// _mm512_reduce_add_ps's tree (GCC's avx512fintrin.h) on the pair (lo, hi): hi + lo, then the 128-bit
// halves, then lanes (0, 2) and (1, 3), then the two.
inline float reduce_add16(__m256 lo, __m256 hi) {
  const __m256 t3 = _mm256_add_ps(hi, lo);
  const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
  const __m128 t8 = _mm_add_ps(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

// The sum `sum16` (cpu_ops.cpp) gives one row of 16 lanes x: per 128-bit block b,
// P_b = (x[4b] + x[4b+2]) + (x[4b+1] + x[4b+3]); then (P0 + P1) + (P2 + P3).
inline float sum16_row(__m256 lo, __m256 hi) {
  auto blocks = [](__m256 v) {  // lane 0 of each 128-bit half: that block's P
    const __m256 t = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m256 u = _mm256_add_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_add_ss(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));  // P_even + P_odd
  };
  return _mm_cvtss_f32(_mm_add_ss(blocks(lo), blocks(hi)));
}

// A pair of bf16 values per 32-bit lane (8 lanes at p) widened to fp32: the even element of each pair
// (low half) and the odd one (high half), as vdpbf16ps pairs them.
inline __m256 bf16_even(__m256i pairs) { return _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16)); }
inline __m256 bf16_odd(__m256i pairs) {
  return _mm256_castsi256_ps(_mm256_and_si256(pairs, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// vdpbf16ps on 8 lanes: acc + odd products, rounded, + even products, rounded (how Zen 4 computes it:
// checked on 3.2 million random lanes, all equal).
inline __m256 dpbf16(__m256 acc, __m256i a, __m256i b) {
  acc = _mm256_fmadd_ps(bf16_odd(a), bf16_odd(b), acc);
  return _mm256_fmadd_ps(bf16_even(a), bf16_even(b), acc);
}
#endif
