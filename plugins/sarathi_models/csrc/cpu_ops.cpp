// Fused CPU kernels of the torch backend: one call where eager torch needs five to fifteen small ops.
//
// A decode step of a small model on the CPU is dominated by per-op overhead (about a thousand ops of a
// few microseconds each) and by paged decode attention, which in plain torch copies every decode's
// whole context out of the paged cache per layer. These kernels read the paged cache in place through
// the block table and fold RMSNorm, rotary embedding and SwiGLU into one pass each.
//
// Rounding: every kernel rounds where the eager torch formulas of `layers.py` and `rope.py` round
// (those follow transformers), so bf16 results match eager torch bit for bit except for the order of
// fp32 sums; attention accumulates in fp32 throughout. That order is one order on every ISA level
// (isa.h): RMSNorm's sum, silu's exp and the attention kernels compute the same bits in the avx512,
// avx2 and (but for attention) portable builds, so a model's greedy text does not depend on the CPU.
//
// Scalar types: float and bfloat16 (the CPU backend's two dtypes). Bound in `bindings.cpp`; `cpu_ops.py`
// compiles the files once per ISA level.

#include "ops.h"
#include "shares.h"
#include "simd.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

// Query heads one decode-attention task holds at most (its maxima and accumulators live on the stack).
constexpr int64_t kMaxQueries = 32;

inline float to_float(float x) { return x; }
inline float to_float(at::BFloat16 x) { return static_cast<float>(x); }

template <typename T>
inline T from_float(float x) { return static_cast<T>(x); }

// A row of `n` values as fp32 in `dst`: a plain copy, or bf16 bits shifted into fp32 bits (exact),
// written so the compiler vectorizes it.
inline void load_row(const float* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }
inline void load_row(const at::BFloat16* src, float* dst, int64_t n) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
  uint32_t* out = reinterpret_cast<uint32_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(bits[i]) << 16;
}

// Round an fp32 value to the storage type and back, as an eager op producing T would.
template <typename T>
inline float round_to(float x) { return to_float(from_float<T>(x)); }

// The sum of x[i]^2 in one order on every ISA level, so RMSNorm's scale is the same bits on all of
// them (a compiler-vectorized sum adds in an order that depends on the vector width): 16 running sums,
// lane l taking x[l], x[l + 16], ... by fma, then `reduce_add16`'s tree.
template <typename T>
float sum_of_squares(const T* x, int64_t n) {
  alignas(64) float part[16] = {};
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    alignas(64) float v[16] = {};
    const int64_t m = std::min<int64_t>(16, n - i0);
    for (int64_t l = 0; l < m; ++l) v[l] = to_float(x[i0 + l]);
#if defined(SARATHI_AVX512)
    _mm512_store_ps(part, _mm512_fmadd_ps(_mm512_load_ps(v), _mm512_load_ps(v), _mm512_load_ps(part)));
#elif defined(SARATHI_AVX2)
    for (int h = 0; h < 16; h += 8)
      _mm256_store_ps(part + h, _mm256_fmadd_ps(_mm256_load_ps(v + h), _mm256_load_ps(v + h), _mm256_load_ps(part + h)));
#else
    for (int l = 0; l < 16; ++l) part[l] = std::fma(v[l], v[l], part[l]);
#endif
  }
  return reduce_add16(part);
}

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

template <typename T>
void rms_norm_impl(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& out) {
  const int64_t hidden = x.size(1);
  at::parallel_for(0, x.size(0), 16, [&](int64_t begin, int64_t end) {
    rms_norm_rows(x.data_ptr<T>(), w.data_ptr<T>(), eps, hidden, out.data_ptr<T>(), begin, end);
  });
}

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

template <typename T>
void silu_and_mul_impl(const at::Tensor& gate_up, at::Tensor& out) {
  const int64_t inter = out.size(1);
  at::parallel_for(0, gate_up.size(0), 4, [&](int64_t begin, int64_t end) {
    silu_and_mul_rows(gate_up.data_ptr<T>(), inter, out.data_ptr<T>(), begin, end);
  });
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

// x [T, H, D] rotated in place by cos/sin [T, D].
template <typename T>
void rotary_impl(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::parallel_for(0, x.size(0), 8, [&](int64_t begin, int64_t end) {
    rotary_rows(x.data_ptr<T>(), x.stride(0), x.size(1), x.stride(1), x.size(2), cos.data_ptr<T>(),
                sin.data_ptr<T>(), begin, end);
  });
}

#if defined(SARATHI_AVX512)
// The sums of 16 vectors, lane r of the result = sum of v[r]: a transpose-and-add tree, 45 ops for
// 16 rows where one horizontal sum per row costs about 8.
inline __m512 sum16(const __m512* v) {
  __m512 s1[8], s2[4], s3[2];
  for (int i = 0; i < 8; ++i)
    s1[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(s1[2 * i]), b = _mm512_castps_pd(s1[2 * i + 1]);
    s2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  for (int i = 0; i < 2; ++i)
    s3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0x88),
                          _mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(s3[0], s3[1], 0x88), _mm512_shuffle_f32x4(s3[0], s3[1], 0xDD));
}

// The hot case of decode attention: bf16, head_dim 64, KV heads h0 .. h0 + heads - 1 of one decode, at
// most kMaxQueries query heads among them. Scores: 16 key rows at a time, each a bf16 dot product
// (`vdpbf16ps`: exact products, fp32 sums) with the query as stored, summed by `sum16`; softmax with a
// vector exp; values two rows at a time into fp32 accumulators. Returns false for any other shape.
//
// Several KV heads in one task read whole cache rows (Hkv x D contiguous) instead of one head's slice of
// each: on a 2-core Zen 4 VM, 16 decodes x 800 tokens of context read 15.5 GB/s one head a task against
// 22 GB/s for a plain read of whole rows, so the hardware prefetchers follow whole rows far better.
// Each query head's arithmetic is the same in either split, so the result does not depend on it.

template <typename T>
bool decode_task_avx512(const T* kp, const T* vp, const int64_t* table, int64_t first, int64_t span,
                        int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_stride,
                        int64_t h0, int64_t heads, int64_t group, const T* qraw, float scale, float* scores,
                        T* out) {
  const int64_t queries = heads * group;
  if (!std::is_same<T, at::BFloat16>::value || queries > kMaxQueries) return false;
  auto row_at = [&](const T* cache, int64_t j) {
    const int64_t pos = first + j;
    return cache + table[pos / block_size] * block_stride + (pos % block_size) * row_stride + h0 * head_stride;
  };
  __m512 best[kMaxQueries];
  for (int64_t g = 0; g < queries; ++g) best[g] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j0 = 0; j0 < span; j0 += 16) {
    const int64_t rows = std::min<int64_t>(16, span - j0);
    const __mmask16 valid = static_cast<__mmask16>((1u << rows) - 1);
    const T* keys[16];
    for (int64_t r = 0; r < rows; ++r) keys[r] = row_at(kp, j0 + r);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t g = 0; g < group; ++g) {
        const int64_t query = h * group + g;
        const __m512bh q0 = (__m512bh)_mm512_loadu_si512(qraw + query * 64);
        const __m512bh q1 = (__m512bh)_mm512_loadu_si512(qraw + query * 64 + 32);
        __m512 part[16];
        for (int64_t r = 0; r < 16; ++r) {
          part[r] = _mm512_setzero_ps();
          if (r >= rows) continue;
          const T* key = keys[r] + h * head_stride;
          part[r] = _mm512_dpbf16_ps(part[r], q0, (__m512bh)_mm512_loadu_si512(key));
          part[r] = _mm512_dpbf16_ps(part[r], q1, (__m512bh)_mm512_loadu_si512(key + 32));
        }
        const __m512 s = _mm512_mul_ps(sum16(part), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(scores + query * span + j0, valid, s);
        best[query] = _mm512_mask_max_ps(best[query], valid, best[query], s);
      }
    }
  }
  float total[kMaxQueries];
  for (int64_t g = 0; g < queries; ++g) {
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(best[g]));
    __m512 sum = _mm512_setzero_ps();
    float* sg = scores + g * span;
    for (int64_t j0 = 0; j0 < span; j0 += 16) {
      const __mmask16 valid = static_cast<__mmask16>((1u << std::min<int64_t>(16, span - j0)) - 1);
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(valid, sg + j0), top));
      _mm512_mask_storeu_ps(sg + j0, valid, e);
      sum = _mm512_mask_add_ps(sum, valid, sum, e);
    }
    total[g] = _mm512_reduce_add_ps(sum);
  }
  // Values two rows at a time: rows j and j + 1 interleaved dim by dim (`unpacklo/hi_epi16`, within
  // each 128-bit lane) meet the bf16 pair (p_j, p_j+1) in one `vdpbf16ps`. The probabilities round to
  // bf16 here, as the torch backend's matmul-softmax rounds them; sums stay fp32.
  const int64_t pairs = (span + 1) / 2;
  uint16_t* probs = reinterpret_cast<uint16_t*>(scores + queries * span);  // [queries, 2 * pairs] bf16 bits
  for (int64_t g = 0; g < queries; ++g) {
    uint16_t* pg = probs + g * 2 * pairs;
    for (int64_t j0 = 0; j0 < span; j0 += 16) {
      const __mmask16 valid = static_cast<__mmask16>((1u << std::min<int64_t>(16, span - j0)) - 1);
      const __m256i bits = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(valid, scores + g * span + j0));
      _mm256_mask_storeu_epi16(pg + j0, valid, bits);
    }
    if (span % 2) pg[span] = 0;
  }
  __m512 acc[kMaxQueries][4];
  for (int64_t g = 0; g < queries; ++g)
    for (int c = 0; c < 4; ++c) acc[g][c] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const int64_t j = 2 * pair;
    const T* r0 = row_at(vp, j);
    const T* r1 = j + 1 < span ? row_at(vp, j + 1) : nullptr;
    for (int64_t h = 0; h < heads; ++h) {
      const __m512i a0 = _mm512_loadu_si512(r0 + h * head_stride), a1 = _mm512_loadu_si512(r0 + h * head_stride + 32);
      __m512i b0 = zero, b1 = zero;
      if (r1 != nullptr) {
        b0 = _mm512_loadu_si512(r1 + h * head_stride);
        b1 = _mm512_loadu_si512(r1 + h * head_stride + 32);
      }
      const __m512bh w[4] = {(__m512bh)_mm512_unpacklo_epi16(a0, b0), (__m512bh)_mm512_unpackhi_epi16(a0, b0),
                             (__m512bh)_mm512_unpacklo_epi16(a1, b1), (__m512bh)_mm512_unpackhi_epi16(a1, b1)};
      for (int64_t g = h * group; g < (h + 1) * group; ++g) {
        int32_t pair_bits;
        std::memcpy(&pair_bits, probs + g * 2 * pairs + j, 4);
        const __m512bh p = (__m512bh)_mm512_set1_epi32(pair_bits);
        for (int c = 0; c < 4; ++c) acc[g][c] = _mm512_dpbf16_ps(acc[g][c], p, w[c]);
      }
    }
  }
  // Lane k of acc[.][c] holds dim 32 (c / 2) + 8 (k / 4) + 4 (c % 2) + k % 4.
  for (int64_t g = 0; g < queries; ++g) {
    const float inv = 1.f / total[g];
    alignas(64) float o[64];
    for (int c = 0; c < 4; ++c) _mm512_store_ps(o + c * 16, acc[g][c]);
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 16; ++k) out[g * 64 + 32 * (c / 2) + 8 * (k / 4) + 4 * (c % 2) + k % 4] = from_float<T>(o[c * 16 + k] * inv);
  }
  return true;
}
#endif

#if defined(SARATHI_AVX2)
// `decode_task_avx512` on AVX2, operation for operation (simd.h's twins of vdpbf16ps, the sum16 tree,
// exp_nonpositive and _mm512_reduce_add_ps), so the avx2 build's decode attention is the same bits:
// scores one key row at a time, values one pair of rows at a time with the later row first.
template <typename T>
bool decode_task_avx2(const T* kp, const T* vp, const int64_t* table, int64_t first, int64_t span,
                      int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_stride,
                      int64_t h0, int64_t heads, int64_t group, const T* qraw, float scale, float* scores, T* out) {
  const int64_t queries = heads * group;
  if (!std::is_same<T, at::BFloat16>::value || queries > kMaxQueries) return false;
  auto row_at = [&](const T* cache, int64_t j) {
    const int64_t pos = first + j;
    return cache + table[pos / block_size] * block_stride + (pos % block_size) * row_stride + h0 * head_stride;
  };
  auto load = [](const T* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  float best[kMaxQueries];
  std::fill(best, best + queries, -std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < span; ++j) {
    const T* key = row_at(kp, j);
    for (int64_t h = 0; h < heads; ++h) {
      const T* kh = key + h * head_stride;
      const __m256i k0 = load(kh), k1 = load(kh + 16), k2 = load(kh + 32), k3 = load(kh + 48);
      for (int64_t g = 0; g < group; ++g) {
        const int64_t query = h * group + g;
        const T* q = qraw + query * 64;
        __m256 lo = dpbf16(_mm256_setzero_ps(), load(q), k0), hi = dpbf16(_mm256_setzero_ps(), load(q + 16), k1);
        lo = dpbf16(lo, load(q + 32), k2);
        hi = dpbf16(hi, load(q + 48), k3);
        const float s = sum16_row(lo, hi) * scale;
        scores[query * span + j] = s;
        best[query] = std::max(best[query], s);
      }
    }
  }
  float total[kMaxQueries];
  for (int64_t g = 0; g < queries; ++g) {
    const __m256 top = _mm256_set1_ps(best[g]);
    __m256 sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    float* sg = scores + g * span;
    for (int64_t j0 = 0; j0 < span; j0 += 8) {
      const int64_t valid = std::min<int64_t>(8, span - j0);
      alignas(32) float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::memcpy(lanes, sg + j0, valid * sizeof(float));
      alignas(32) float e[8];
      _mm256_store_ps(e, exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(lanes), top)));
      for (int64_t i = valid; i < 8; ++i) e[i] = 0.f;
      std::memcpy(sg + j0, e, valid * sizeof(float));
      sum[(j0 / 8) % 2] = _mm256_add_ps(sum[(j0 / 8) % 2], _mm256_load_ps(e));
    }
    total[g] = reduce_add16(sum[0], sum[1]);
  }
  // probabilities rounded to bf16 as vcvtneps2bf16 rounds them; values: acc += p[j+1] v[j+1], then
  // += p[j] v[j], per dimension (vdpbf16ps's order on the interleaved pair)
  for (int64_t g = 0; g < queries; ++g) {
    float* sg = scores + g * span;
    for (int64_t j = 0; j < span; ++j) sg[j] = round_to<at::BFloat16>(sg[j]);
  }
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t g = h * group; g < (h + 1) * group; ++g) {
      __m256 acc[8];
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
      const float* pg = scores + g * span;
      for (int64_t j = 0; j < span; j += 2) {
        const T* r0 = row_at(vp, j) + h * head_stride;
        if (j + 1 < span) {
          const T* r1 = row_at(vp, j + 1) + h * head_stride;
          const __m256 p1 = _mm256_set1_ps(pg[j + 1]);
          for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(p1, load_bf16x8(r1 + 8 * c), acc[c]);
        }
        const __m256 p0 = _mm256_set1_ps(pg[j]);
        for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(p0, load_bf16x8(r0 + 8 * c), acc[c]);
      }
      const __m256 inv = _mm256_set1_ps(1.f / total[g]);
      for (int c = 0; c < 8; ++c) store_bf16x8(out + g * 64 + 8 * c, _mm256_mul_ps(acc[c], inv));
    }
  }
  return true;
}
#endif

// One decode's attention for KV head h in portable code (the portable build, fp32, head_dim other than 64),
// rounding where `decode_task_avx512` rounds: bf16 scores of the query as stored, scaled after the dot
// product; softmax in fp32; probabilities rounded to T for the values' product, sums in fp32.
// q and out point at the head's G query rows; qf, scores (G * span), acc (G * dim), row (dim) are scratch.
template <typename T>
void decode_task_generic(const T* kp, const T* vp, const int64_t* table, int64_t first, int64_t span,
                         int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_offset, int64_t group,
                         int64_t dim, const T* q, float scale, float* qf, float* scores, float* acc, float* row,
                         T* out) {
  // bf16 scales after the dot product, as the avx512 path does; fp32 (the exact reference) before it
  const float q_scale = std::is_same<T, float>::value ? scale : 1.f, score_scale = scale / q_scale;
  for (int64_t d = 0; d < group * dim; ++d) qf[d] = to_float(q[d]) * q_scale;
  auto row_at = [&](const T* cache, int64_t j) {
    const int64_t pos = first + j;
    return cache + table[pos / block_size] * block_stride + (pos % block_size) * row_stride + head_offset;
  };
  std::vector<float> best(group, -std::numeric_limits<float>::infinity()), total(group, 0.f);
  for (int64_t j = 0; j < span; ++j) {
    load_row(row_at(kp, j), row, dim);
    for (int64_t g = 0; g < group; ++g) {
      const float* qg = qf + g * dim;
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < dim; ++d) dot += qg[d] * row[d];
      scores[g * span + j] = dot * score_scale;
      best[g] = std::max(best[g], dot * score_scale);
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* sg = scores + g * span;
    for (int64_t j = 0; j < span; ++j) {
      sg[j] = std::exp(sg[j] - best[g]);
      total[g] += sg[j];
    }
  }
  std::fill(acc, acc + group * dim, 0.f);
  for (int64_t j = 0; j < span; ++j) {
    load_row(row_at(vp, j), row, dim);
    for (int64_t g = 0; g < group; ++g) {
      const float p = round_to<T>(scores[g * span + j]);
      float* ag = acc + g * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) ag[d] += p * row[d];
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    const float inv = 1.f / total[g];
    for (int64_t d = 0; d < dim; ++d) out[g * dim + d] = from_float<T>(acc[g * dim + d] * inv);
  }
}

// KV heads per task: all of a decode's (whole cache rows, see `decode_task_avx512`) when there are
// decodes enough to keep every thread busy, else one, so a step of few decodes still spreads over the
// threads. At most kMaxQueries query heads, a divisor of hkv.
int64_t heads_per_task(int64_t decodes, int64_t hkv, int64_t group, int64_t threads) {
  if (decodes < 4 * threads) return 1;
  int64_t heads = std::max<int64_t>(1, std::min<int64_t>(hkv, kMaxQueries / group));
  while (hkv % heads != 0) --heads;
  return heads;
}

template <typename T>
shares::PagedDecodes<T> paged_decodes_of(const T* q, int64_t q_stride, T* out, int64_t out_stride,
                                         const at::Tensor& k_cache, const at::Tensor& v_cache,
                                         const at::Tensor& tables, const at::Tensor& lengths, int64_t hq,
                                         double scale, int64_t window, int64_t threads) {
  const int64_t hkv = k_cache.size(2), n = tables.size(0);
  return {q, q_stride, out, out_stride, k_cache.data_ptr<T>(), v_cache.data_ptr<T>(), k_cache.size(1),
          k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), tables.data_ptr<int64_t>(), tables.size(1),
          lengths.data_ptr<int64_t>(), n, hq, hkv, k_cache.size(3), static_cast<float>(scale), window,
          heads_per_task(n, hkv, hq / hkv, threads)};
}

// Where each share of the layer's tasks starts (parts + 1 bounds, a decode's tasks in a row): shares of
// about equal context rows, not equal task counts, since a mixed step's decodes range from a few tokens
// of context to the whole window and an even split by count leaves one thread waiting on the other.
template <typename T>
std::vector<int64_t> attention_shares_of(const shares::PagedDecodes<T>& layer, int64_t parts) {
  constexpr int64_t kTaskRows = 16;  // a task's fixed cost, counted in context rows
  const int64_t tasks = layer.tasks(), splits = tasks / std::max<int64_t>(1, layer.decodes);
  std::vector<int64_t> cost(tasks);
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t length = layer.lengths[task / splits];
    cost[task] = (layer.window > 0 ? std::min(length, layer.window) : length) + kTaskRows;
  }
  return shares::balanced_bounds(cost, parts);
}

// Tasks [begin, end) of the layer's decode attention: the G = Hq / Hkv query heads of a KV head share
// each key and value row as it is read.
template <typename T>
void attend_tasks(const shares::PagedDecodes<T>& layer, int64_t begin, int64_t end) {
  const int64_t group = layer.hq / layer.hkv, dim = layer.dim, heads = layer.heads_per_task;
  const int64_t splits = layer.hkv / heads;
  std::vector<float> qf(group * dim), scores, acc(group * dim), row(dim);
  for (int64_t task = begin; task < end; ++task) {
    const int64_t i = task / splits, h0 = task % splits * heads;
    const int64_t length = layer.lengths[i];
    const int64_t first = layer.window > 0 ? std::max<int64_t>(0, length - layer.window) : 0;
    const int64_t span = length - first;
    const int64_t* table = layer.tables + i * layer.max_blocks;
    const T* q = layer.q + i * layer.q_stride;
    T* out = layer.out + i * layer.out_stride;
    const int64_t queries = heads * group;
    scores.resize(queries * span + queries * (span + 2) / 2 + 1);  // fp32 scores, then bf16 probabilities
#if defined(SARATHI_AVX512)
    if (dim == 64 && decode_task_avx512<T>(layer.k_cache, layer.v_cache, table, first, span, layer.block_size,
                                           layer.block_stride, layer.row_stride, layer.head_stride, h0, heads, group,
                                           q + h0 * group * dim, layer.scale, scores.data(), out + h0 * group * dim))
      continue;
#elif defined(SARATHI_AVX2)
    if (dim == 64 && decode_task_avx2<T>(layer.k_cache, layer.v_cache, table, first, span, layer.block_size,
                                         layer.block_stride, layer.row_stride, layer.head_stride, h0, heads, group,
                                         q + h0 * group * dim, layer.scale, scores.data(), out + h0 * group * dim))
      continue;
#endif
    for (int64_t h = h0; h < h0 + heads; ++h)
      decode_task_generic(layer.k_cache, layer.v_cache, table, first, span, layer.block_size, layer.block_stride,
                          layer.row_stride, h * layer.head_stride, group, dim, q + h * group * dim, layer.scale,
                          qf.data(), scores.data(), acc.data(), row.data(), out + h * group * dim);
  }
}

// Decode attention over the paged cache, read in place through the block table.
// q [N, Hq, D]; caches [num_blocks, block_size, Hkv, D]; tables [N, max_blocks] int64;
// context_lens [N] int64; out [N, Hq, D]. One task per decode and group of KV heads (`heads_per_task`).
template <typename T>
void decode_attention_impl(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& tables, const at::Tensor& context_lens, double scale,
                           int64_t window, at::Tensor& out) {
  const int64_t hq = q.size(1), row = hq * q.size(2), threads = at::get_num_threads();
  const shares::PagedDecodes<T> layer = paged_decodes_of<T>(q.data_ptr<T>(), row, out.data_ptr<T>(), row, k_cache,
                                                            v_cache, tables, context_lens, hq, scale, window, threads);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, layer.tasks()));
  const std::vector<int64_t> bounds = attention_shares_of(layer, parts);
  at::parallel_for(0, parts, 1, [&](int64_t first_part, int64_t last_part) {
    attend_tasks(layer, bounds[first_part], bounds[last_part]);
  });
}

void check_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name,
              " must be float32 or bfloat16, got ", t.scalar_type());
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_dtype(x, "x");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x must be a contiguous [T, H] tensor");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type() && weight.numel() == x.size(1) && weight.is_contiguous(),
              "weight must be a contiguous [H] tensor of x's dtype");
  at::Tensor out = at::empty_like(x);
  if (x.scalar_type() == at::kFloat) rms_norm_impl<float>(x, weight, eps, out);
  else rms_norm_impl<at::BFloat16>(x, weight, eps, out);
  return out;
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  check_dtype(gate_up, "gate_up");
  TORCH_CHECK(gate_up.dim() == 2 && gate_up.is_contiguous() && gate_up.size(1) % 2 == 0,
              "gate_up must be a contiguous [T, 2I] tensor");
  at::Tensor out = at::empty({gate_up.size(0), gate_up.size(1) / 2}, gate_up.options());
  if (gate_up.scalar_type() == at::kFloat) silu_and_mul_impl<float>(gate_up, out);
  else silu_and_mul_impl<at::BFloat16>(gate_up, out);
  return out;
}

void rotary_(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin) {
  check_dtype(x, "x");
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "x must be [T, H, D] with unit stride in D");
  TORCH_CHECK(cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type(),
              "cos and sin must have x's dtype");
  TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous() && cos.numel() == x.size(0) * x.size(2) &&
              sin.numel() == cos.numel(), "cos and sin must be contiguous [T, D]");
  if (x.scalar_type() == at::kFloat) rotary_impl<float>(x, cos, sin);
  else rotary_impl<at::BFloat16>(x, cos, sin);
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                            int64_t window) {
  check_dtype(q, "q");
  TORCH_CHECK(q.dim() == 3 && q.is_contiguous(), "q must be a contiguous [N, Hq, D] tensor");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.stride(3) == 1 && v_cache.sizes() == k_cache.sizes() &&
                  v_cache.strides() == k_cache.strides(),
              "caches must be [num_blocks, block_size, Hkv, D] views of one layout, unit stride in D");
  TORCH_CHECK(k_cache.scalar_type() == q.scalar_type() && v_cache.scalar_type() == q.scalar_type(),
              "caches must have q's dtype");
  TORCH_CHECK(k_cache.size(3) == q.size(2) && q.size(1) % k_cache.size(2) == 0,
              "head_dim must match and Hq must be a multiple of Hkv");
  TORCH_CHECK(block_tables.scalar_type() == at::kLong && block_tables.dim() == 2 && block_tables.is_contiguous() &&
              block_tables.size(0) == q.size(0), "block_tables must be contiguous [N, max_blocks] int64");
  TORCH_CHECK(context_lens.scalar_type() == at::kLong && context_lens.numel() == q.size(0) &&
              context_lens.is_contiguous(), "context_lens must be contiguous [N] int64");
  at::Tensor out = at::empty_like(q);
  if (q.scalar_type() == at::kFloat)
    decode_attention_impl<float>(q, k_cache, v_cache, block_tables, context_lens, scale, window, out);
  else
    decode_attention_impl<at::BFloat16>(q, k_cache, v_cache, block_tables, context_lens, scale, window, out);
  return out;
}

namespace shares {

std::vector<int64_t> balanced_bounds(const std::vector<int64_t>& cost, int64_t parts) {
  int64_t total = 0;
  for (const int64_t c : cost) total += c;
  std::vector<int64_t> bounds{0};
  int64_t done = 0;
  const int64_t count = static_cast<int64_t>(cost.size());
  for (int64_t item = 0; item < count; ++item) {
    done += cost[item];
    if (static_cast<int64_t>(bounds.size()) < parts && done * parts >= total * static_cast<int64_t>(bounds.size()))
      bounds.push_back(item + 1);
  }
  while (static_cast<int64_t>(bounds.size()) <= parts) bounds.push_back(count);
  return bounds;
}

Range slice(int64_t count, int64_t index, int64_t parts) {
  const int64_t chunk = (count + parts - 1) / parts;
  return {std::min(count, index * chunk), std::min(count, (index + 1) * chunk)};
}

void rms_norm(const bf16* x, const bf16* weight, double eps, int64_t hidden, bf16* out, Range rows) {
  rms_norm_rows(x, weight, eps, hidden, out, rows.begin, rows.end);
}

void silu_and_mul(const bf16* gate_up, int64_t inter, bf16* out, Range rows) {
  silu_and_mul_rows(gate_up, inter, out, rows.begin, rows.end);
}

void rotary(bf16* x, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim, const bf16* cos,
            const bf16* sin, Range tokens) {
  rotary_rows(x, token_stride, heads, head_stride, dim, cos, sin, tokens.begin, tokens.end);
}

PagedDecodes<bf16> paged_decodes(const bf16* q, int64_t q_stride, bf16* out, int64_t out_stride,
                                 const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& tables,
                                 const at::Tensor& lengths, int64_t hq, double scale, int64_t window,
                                 int64_t threads) {
  return paged_decodes_of<bf16>(q, q_stride, out, out_stride, k_cache, v_cache, tables, lengths, hq, scale, window,
                                threads);
}

std::vector<int64_t> attention_shares(const PagedDecodes<bf16>& layer, int64_t parts) {
  return attention_shares_of(layer, parts);
}

void decode_attention(const PagedDecodes<bf16>& layer, Range tasks) { attend_tasks(layer, tasks.begin, tasks.end); }

}  // namespace shares
