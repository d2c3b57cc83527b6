// The index of a row's largest logit, as torch.argmax(dim=-1) gives it (the first of equal maxima; a
// row holding a NaN gives its first NaN), in plain C++ with a vector pass per ISA level (`argmax.cpp`
// binds it; `tests/csrc/kernels_check.cpp` builds it for every level, ARM64 included). The maximum of a
// set does not depend on the order it is taken in, so every level gives the same index.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace kern {

inline int64_t argmax_row(const float* row, int64_t n) {
  float best = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  bool has_nan = false;
#if defined(SARATHI_AVX512)
  __m512 top = _mm512_set1_ps(best);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(row + i);
    has_nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) != 0;
    top = _mm512_max_ps(top, v);
  }
  best = _mm512_reduce_max_ps(top);
#elif defined(SARATHI_AVX2)
  __m256 top = _mm256_set1_ps(best);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(row + i);
    has_nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0;
    top = _mm256_max_ps(top, v);
  }
  __m128 half = _mm_max_ps(_mm256_castps256_ps128(top), _mm256_extractf128_ps(top, 1));
  half = _mm_max_ps(half, _mm_movehl_ps(half, half));
  best = _mm_cvtss_f32(_mm_max_ss(half, _mm_shuffle_ps(half, half, 1)));
#elif defined(SARATHI_NEON)
  float32x4_t top = vdupq_n_f32(best);
  uint32x4_t ordered = vdupq_n_u32(0xFFFFFFFFu);  // lanes that saw no NaN
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(row + i);
    ordered = vandq_u32(ordered, vceqq_f32(v, v));
    top = vmaxnmq_f32(top, v);
  }
  has_nan = vminvq_u32(ordered) == 0;
  best = vmaxnmvq_f32(top);
#endif
  if (has_nan) best = std::numeric_limits<float>::quiet_NaN();
  for (; i < n; ++i) {
    if (std::isnan(row[i]) || std::isnan(best)) {
      best = std::numeric_limits<float>::quiet_NaN();
      break;
    }
    best = std::max(best, row[i]);
  }
  for (int64_t j = 0; j < n; ++j)
    if (std::isnan(best) ? std::isnan(row[j]) : row[j] == best) return j;
  return 0;  // a row of all -inf: its first index, as torch
}

}  // namespace kern
