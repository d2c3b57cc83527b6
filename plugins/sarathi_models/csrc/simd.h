// Math the kernels share at every ISA level (isa.h): the scalar exp and sum tree every level's results
// follow, and the AVX-512 exp. The narrower levels' vector math is `vec8.h`.
#pragma once

#include "isa.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kern {

// exp_nonpositive below, one value at a time, the same steps in the same roundings (fma where the
// vector code fuses), so scalar code (the portable build, loops the compiler vectorizes) gives its bits.
inline float exp_nonpositive_scalar(float x) {
  x = x > -87.f ? x : -87.f;  // maxps(x, -87): a NaN gives -87
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

}  // namespace kern
