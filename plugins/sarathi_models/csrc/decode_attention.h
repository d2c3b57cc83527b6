// Decode attention over the paged KV cache, in plain C++: each decode's query heads read their context's
// keys and values in place through the block table (plain torch copies every decode's whole context out
// of the paged cache per layer). `cpu_ops.cpp` and `decode_stack.cpp` bind it to tensors;
// `tests/csrc/kernels_check.cpp` builds it alone for every ISA level, ARM64 included.
//
// The hot case (bf16, head_dim 64) has one arithmetic on every level: `decode_task_avx512`'s, which
// `decode_task_v8` replays in 8-lane vectors (AVX2, NEON, scalar). Sums stay fp32; the probabilities
// round to bf16 for the values' product, as the torch backend's matmul-softmax rounds them.
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
#include <type_traits>
#include <vector>

namespace kern {

// Query heads one decode-attention task holds at most (its maxima and accumulators live on the stack).
constexpr int64_t kMaxQueries = 32;

// One layer's decode attention over the paged cache: decode i's query heads start at q + i * q_stride
// ([Hq, D] contiguous), its output at out + i * out_stride; caches [num_blocks, block_size, Hkv, D]
// (strides in elements); tables [decodes, max_blocks]; lengths [decodes]. Split into tasks of one decode
// and `heads_per_task` of its KV heads.
template <typename T>
struct PagedDecodes {
  const T* q;
  int64_t q_stride;
  T* out;
  int64_t out_stride;
  const T* k_cache;
  const T* v_cache;
  int64_t block_size, block_stride, row_stride, head_stride;
  const int64_t* tables;
  int64_t max_blocks;
  const int64_t* lengths;
  int64_t decodes, hq, hkv, dim;
  float scale;
  int64_t window, heads_per_task;

  int64_t tasks() const { return decodes * (hkv / heads_per_task); }
};

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
  if (!std::is_same<T, bf16>::value || queries > kMaxQueries) return false;
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

// `decode_task_avx512` in 8-lane vectors (vec8.h: AVX2, NEON or scalar), operation for operation, so
// the avx2, neon and portable builds' decode attention is the same bits: scores one key row at a time
// (vdpbf16ps's pairs and the `sum16` tree per row), values one pair of rows at a time with the later
// row first (vdpbf16ps's order on the interleaved pair).
template <typename T>
bool decode_task_v8(const T* kp, const T* vp, const int64_t* table, int64_t first, int64_t span,
                    int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_stride,
                    int64_t h0, int64_t heads, int64_t group, const T* qraw, float scale, float* scores, T* out) {
  const int64_t queries = heads * group;
  if (!std::is_same<T, bf16>::value || queries > kMaxQueries) return false;
  auto row_at = [&](const T* cache, int64_t j) {
    const int64_t pos = first + j;
    return cache + table[pos / block_size] * block_stride + (pos % block_size) * row_stride + h0 * head_stride;
  };
  float best[kMaxQueries];
  std::fill(best, best + queries, -std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < span; ++j) {
    const T* key = row_at(kp, j);
    for (int64_t h = 0; h < heads; ++h) {
      const T* kh = key + h * head_stride;
      const v8::P k0 = v8::load_pairs(kh), k1 = v8::load_pairs(kh + 16), k2 = v8::load_pairs(kh + 32),
                  k3 = v8::load_pairs(kh + 48);
      for (int64_t g = 0; g < group; ++g) {
        const int64_t query = h * group + g;
        const T* q = qraw + query * 64;
        v8::F lo = v8::dpbf16(v8::zero(), v8::load_pairs(q), k0), hi = v8::dpbf16(v8::zero(), v8::load_pairs(q + 16), k1);
        lo = v8::dpbf16(lo, v8::load_pairs(q + 32), k2);
        hi = v8::dpbf16(hi, v8::load_pairs(q + 48), k3);
        const float s = v8::sum16_row(lo, hi) * scale;
        scores[query * span + j] = s;
        best[query] = std::max(best[query], s);
      }
    }
  }
  float total[kMaxQueries];
  for (int64_t g = 0; g < queries; ++g) {
    const v8::F top = v8::set1(best[g]);
    v8::F sum[2] = {v8::zero(), v8::zero()};
    float* sg = scores + g * span;
    for (int64_t j0 = 0; j0 < span; j0 += 8) {
      const int64_t valid = std::min<int64_t>(8, span - j0);
      float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::memcpy(lanes, sg + j0, valid * sizeof(float));
      float e[8];
      v8::store(e, v8::exp_nonpositive(v8::sub(v8::load(lanes), top)));
      for (int64_t i = valid; i < 8; ++i) e[i] = 0.f;
      std::memcpy(sg + j0, e, valid * sizeof(float));
      sum[(j0 / 8) % 2] = v8::add(sum[(j0 / 8) % 2], v8::load(e));
    }
    total[g] = v8::reduce_add16(sum[0], sum[1]);
  }
  // probabilities rounded to bf16 as vcvtneps2bf16 rounds them; values: acc += p[j+1] v[j+1], then
  // += p[j] v[j], per dimension (vdpbf16ps's order on the interleaved pair)
  for (int64_t g = 0; g < queries; ++g) {
    float* sg = scores + g * span;
    for (int64_t j = 0; j < span; ++j) sg[j] = round_to<bf16>(sg[j]);
  }
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t g = h * group; g < (h + 1) * group; ++g) {
      v8::F acc[8];
      for (int c = 0; c < 8; ++c) acc[c] = v8::zero();
      const float* pg = scores + g * span;
      for (int64_t j = 0; j < span; j += 2) {
        const T* r0 = row_at(vp, j) + h * head_stride;
        if (j + 1 < span) {
          const T* r1 = row_at(vp, j + 1) + h * head_stride;
          const v8::F p1 = v8::set1(pg[j + 1]);
          for (int c = 0; c < 8; ++c) acc[c] = v8::fma(p1, v8::load_bf16(r1 + 8 * c), acc[c]);
        }
        const v8::F p0 = v8::set1(pg[j]);
        for (int c = 0; c < 8; ++c) acc[c] = v8::fma(p0, v8::load_bf16(r0 + 8 * c), acc[c]);
      }
      const v8::F inv = v8::set1(1.f / total[g]);
      for (int c = 0; c < 8; ++c) v8::store_bf16(out + g * 64 + 8 * c, v8::mul(acc[c], inv));
    }
  }
  return true;
}

// A row of `n` values as fp32 in `dst`: a plain copy, or bf16 bits shifted into fp32 bits (exact),
// written so the compiler vectorizes it.
inline void load_row(const float* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }
inline void load_row(const bf16* src, float* dst, int64_t n) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
  uint32_t* out = reinterpret_cast<uint32_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(bits[i]) << 16;
}

// One decode's attention for KV head h in portable code (fp32, and head_dims other than 64),
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
inline int64_t heads_per_task(int64_t decodes, int64_t hkv, int64_t group, int64_t threads) {
  if (decodes < 4 * threads) return 1;
  int64_t heads = std::max<int64_t>(1, std::min<int64_t>(hkv, kMaxQueries / group));
  while (hkv % heads != 0) --heads;
  return heads;
}

// Where each share of the layer's tasks starts (parts + 1 bounds, a decode's tasks in a row): shares of
// about equal context rows, not equal task counts, since a mixed step's decodes range from a few tokens
// of context to the whole window and an even split by count leaves one thread waiting on the other.
template <typename T>
std::vector<int64_t> attention_shares_of(const PagedDecodes<T>& layer, int64_t parts) {
  constexpr int64_t kTaskRows = 16;  // a task's fixed cost, counted in context rows
  const int64_t tasks = layer.tasks(), splits = tasks / std::max<int64_t>(1, layer.decodes);
  std::vector<int64_t> cost(tasks);
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t length = layer.lengths[task / splits];
    cost[task] = (layer.window > 0 ? std::min(length, layer.window) : length) + kTaskRows;
  }
  return balanced_bounds(cost, parts);
}

// Tasks [begin, end) of the layer's decode attention: the G = Hq / Hkv query heads of a KV head share
// each key and value row as it is read.
template <typename T>
void attend_tasks(const PagedDecodes<T>& layer, int64_t begin, int64_t end) {
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
#else
    if (dim == 64 && decode_task_v8<T>(layer.k_cache, layer.v_cache, table, first, span, layer.block_size,
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

}  // namespace kern
