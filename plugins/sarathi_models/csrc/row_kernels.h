// The row-wise kernels of a decoder layer (RMSNorm, SwiGLU's silu(gate) * up, rotary embedding, the
// residual add), on rows [begin, end), in plain C++: `cpu_ops.cpp` and `decode_stack.cpp` bind them
// to tensors, `tests/csrc/kernels_check.cpp` builds them alone for every ISA level, ARM64 included.
//
// Rounding: each rounds where the eager torch formulas of `layers.py` and `rope.py` round (those
// follow transformers), so bf16 results match eager torch bit for bit but for the order of fp32 sums,
// and that order is one order on every level (RMSNorm's sum of squares, silu's exp), so a model's
// greedy text does not depend on the CPU. T is float or bf16.
#pragma once

#include "bf16.h"
#include "isa.h"
#include "simd.h"
#include "vec8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kern {

// The sum of x[i]^2 in one order on every ISA level (a compiler-vectorized sum adds in an order that
// depends on the vector width): 16 running sums, lane l taking x[l], x[l + 16], ... by fma, then
// `reduce_add16`'s tree.
template <typename T>
float sum_of_squares(const T* x, int64_t n) {
  alignas(64) float part[16] = {};
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    alignas(64) float v[16] = {};
    const int64_t m = std::min<int64_t>(16, n - i0);
    for (int64_t l = 0; l < m; ++l) v[l] = to_float(x[i0 + l]);
#if defined(SARATHI_AVX512)
    _mm512_store_ps(part, _mm512_fmadd_ps(_mm512_load_ps(v), _mm512_load_ps(v), _mm512_load_ps(part)));
#else
    for (int h = 0; h < 16; h += 8) v8::store(part + h, v8::fma(v8::load(v + h), v8::load(v + h), v8::load(part + h)));
#endif
  }
  return reduce_add16(part);
}

// RMSNorm of rows of x [T, H] by weight [H] -> out [T, H].
template <typename T>
void rms_norm_rows(const T* xp, const T* wp, double eps, int64_t hidden, T* op, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = xp + r * hidden;
    T* orow = op + r * hidden;
    const float sum = sum_of_squares(xr, hidden);
    const float inv = 1.f / std::sqrt(sum / static_cast<float>(hidden) + static_cast<float>(eps));
    for (int64_t i = 0; i < hidden; ++i) {
      // transformers: weight * (x * rsqrt(var + eps)).to(dtype)
      orow[i] = from_float<T>(to_float(wp[i]) * round_to<T>(to_float(xr[i]) * inv));
    }
  }
}

// silu(gate) * up of rows of a fused projection gate_up [T, 2I] -> out [T, I].
template <typename T>
void silu_and_mul_rows(const T* gp, int64_t inter, T* op, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T* g = gp + r * 2 * inter;
    const T* u = g + inter;
    T* o = op + r * inter;
    for (int64_t i = 0; i < inter; ++i) {
      // silu(a) = a / (1 + e^-a), with e^-|a| from `exp_nonpositive_scalar` (the same bits on every
      // level, where libm's vector exp differs between AVX2 and AVX-512): a >= 0 divides a by 1 + e^-a,
      // a < 0 multiplies by e^a / (1 + e^a)
      const float a = to_float(g[i]);
      const float e = exp_nonpositive_scalar(-std::fabs(a));
      const float silu = round_to<T>(a >= 0.f ? a / (1.f + e) : a * e / (1.f + e));
      o[i] = from_float<T>(silu * to_float(u[i]));
    }
  }
}

// Tokens [begin, end) rotated in place by cos/sin [T, D] (rotate-half layout); token t's head h at
// xp + t * token_stride + h * head_stride.
template <typename T>
void rotary_rows(T* xp, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim, const T* cp,
                 const T* sp, int64_t begin, int64_t end) {
  const int64_t half = dim / 2;
  std::vector<float> row(dim);
  for (int64_t t = begin; t < end; ++t) {
    const T* c = cp + t * dim;
    const T* s = sp + t * dim;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = xp + t * token_stride + h * head_stride;
      for (int64_t i = 0; i < dim; ++i) row[i] = to_float(v[i]);
      for (int64_t i = 0; i < dim; ++i) {
        // transformers: x * cos + rotate_half(x) * sin, each product rounded, then the sum
        const float rotated = i < half ? -row[i + half] : row[i - half];
        v[i] = from_float<T>(round_to<T>(row[i] * to_float(c[i])) + round_to<T>(rotated * to_float(s[i])));
      }
    }
  }
}

// Rows [begin, end) of h [T, H] += b [T, H], as eager torch adds two bf16 tensors: in fp32, rounded
// once to nearest even.
inline void add_rows(bf16* h, const bf16* b, int64_t hidden, int64_t begin, int64_t end) {
  int64_t i = begin * hidden;
  const int64_t last = end * hidden;
#if defined(SARATHI_AVX512)
  auto widen = [](const bf16* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  };
  for (; i + 16 <= last; i += 16) {
    const __m256bh sum = _mm512_cvtneps_pbh(_mm512_add_ps(widen(h + i), widen(b + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), (__m256i)sum);
  }
#else
  for (; i + 8 <= last; i += 8) v8::store_bf16(h + i, v8::add(v8::load_bf16(h + i), v8::load_bf16(b + i)));
#endif
  for (; i < last; ++i) h[i] = bf16(static_cast<float>(h[i]) + static_cast<float>(b[i]));
}

}  // namespace kern
