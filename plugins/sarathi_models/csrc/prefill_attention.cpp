// Prefill-chunk attention over the paged KV cache on the CPU: each chunk's queries read their keys and
// values in place through the block table, causally from the bottom right (query i of a T-token chunk
// of an L-token context sees keys 0 .. L - T + i).
//
// The torch backend gathers a chunk's whole context out of the cache in every layer, then runs SDPA
// with a mask, which computes every block the mask hides (whole prompts take SDPA's causal path, which
// skips them). On the 2-core Zen 4 VM SDPA ran these shapes at about 130 GFLOP/s, 41% of a 240-token
// chunk's step at 512 cached tokens. Here a task is one KV head and 16 query positions (its G query
// heads share every key and value row, as in decode attention), the keys come 16 at a time, transposed
// to pairs of dims so that `vdpbf16ps` gives 16 scores per instruction, and the softmax is online
// (flash attention's running maximum and sum). Blocks of keys after a tile's last position are never
// read; the diagonal block is masked lane by lane. Probabilities round to bf16 for the values' product
// (as decode attention and the torch backend's bf16 matmul-softmax do); sums stay fp32.
//
// bf16, head_dim 64, no sliding window, the avx512 and avx2 levels (the avx2 one replays the avx512
// arithmetic, the same bits; `prefill_attention_supported()` says whether this build has it); the
// attention backend keeps SDPA for everything else, the portable build included (SDPA is faster than
// this kernel's scalar form would be).

#include "ops.h"
#include "simd.h"

#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)
namespace {

constexpr int64_t kTile = 16;  // query positions per task, keys per block

}  // namespace
#endif

#if defined(SARATHI_AVX512)
namespace {

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
void attend_tile(const uint16_t* qp, const uint16_t* kp, const uint16_t* vp, const int64_t* tp, uint16_t* op,
                 int64_t T, int64_t hq, int64_t hkv, int64_t bs, int64_t bstride, int64_t rstride, int64_t hstride,
                 int64_t p0, float fscale, int64_t h, int64_t tile) {
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
        corr[r] = m_new == m[row] ? 1.f : std::exp(m[row] - m_new);  // the maximum settles early
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
        o[dim] = c10::BFloat16(v).x;
      }
  }
}

}  // namespace
#endif

#if defined(SARATHI_AVX2)
namespace {

// `attend_tile` on AVX2, operation for operation (simd.h's twins of vdpbf16ps, exp_nonpositive and
// _mm512_reduce_add_ps), so the avx2 build's prefill attention is the same bits. A block's 16 keys are
// lanes 0-7 (lo) and 8-15 (hi); their dim pairs are transposed through memory (kt[pair][key]).
void attend_tile(const uint16_t* qp, const uint16_t* kp, const uint16_t* vp, const int64_t* tp, uint16_t* op,
                 int64_t T, int64_t hq, int64_t hkv, int64_t bs, int64_t bstride, int64_t rstride, int64_t hstride,
                 int64_t p0, float fscale, int64_t h, int64_t tile) {
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
        _mm256_store_ps(values[j] + 8 * c, j < nkeys ? load_bf16x8(vr + 8 * c) : _mm256_setzero_ps());
    }
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t pos = p0 + i0 + row / group, g = row % group;
      const int64_t visible = std::min<int64_t>(nkeys, pos - j0 + 1);
      if (visible <= 0) continue;
      const uint32_t* qpairs = reinterpret_cast<const uint32_t*>(qp + ((i0 + row / group) * hq + h * group + g) * D);
      __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
      for (int dp = 0; dp < 32; ++dp) {
        const __m256i q = _mm256_set1_epi32(static_cast<int>(qpairs[dp]));
        lo = dpbf16(lo, q, _mm256_load_si256(reinterpret_cast<const __m256i*>(kt[dp])));
        hi = dpbf16(hi, q, _mm256_load_si256(reinterpret_cast<const __m256i*>(kt[dp] + 8)));
      }
      const __m256 scale = _mm256_set1_ps(fscale);
      alignas(32) float s[16];
      _mm256_store_ps(s, _mm256_mul_ps(lo, scale));
      _mm256_store_ps(s + 8, _mm256_mul_ps(hi, scale));
      float block_max = std::numeric_limits<float>::lowest();
      for (int j = 0; j < visible; ++j) block_max = std::max(block_max, s[j]);
      const float m_new = std::max(m[row], block_max);
      const float corr = m_new == m[row] ? 1.f : std::exp(m[row] - m_new);
      m[row] = m_new;
      const __m256 top = _mm256_set1_ps(m_new);
      alignas(32) float p[16];
      _mm256_store_ps(p, exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(s), top)));
      _mm256_store_ps(p + 8, exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(s + 8), top)));
      for (int j = visible; j < 16; ++j) p[j] = 0.f;
      l[row] = l[row] * corr + reduce_add16(_mm256_load_ps(p), _mm256_load_ps(p + 8));
      for (int j = 0; j < 16; ++j) probs[row][j] = static_cast<float>(c10::BFloat16(p[j]));
      __m256 a[8];
      for (int c = 0; c < 8; ++c) a[c] = _mm256_load_ps(acc[row] + 8 * c);
      if (corr != 1.f)
        for (int c = 0; c < 8; ++c) a[c] = _mm256_mul_ps(a[c], _mm256_set1_ps(corr));
      for (int pr = 0; pr < 8; ++pr) {
        const __m256 odd = _mm256_set1_ps(probs[row][2 * pr + 1]), even = _mm256_set1_ps(probs[row][2 * pr]);
        for (int c = 0; c < 8; ++c) {
          a[c] = _mm256_fmadd_ps(odd, _mm256_load_ps(values[2 * pr + 1] + 8 * c), a[c]);
          a[c] = _mm256_fmadd_ps(even, _mm256_load_ps(values[2 * pr] + 8 * c), a[c]);
        }
      }
      for (int c = 0; c < 8; ++c) _mm256_store_ps(acc[row] + 8 * c, a[c]);
    }
  }
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t pos = row / group, g = row % group;
    uint16_t* o = op + ((i0 + pos) * hq + h * group + g) * D;
    const float inv = 1.f / l[row];
    for (int d = 0; d < 64; ++d) o[d] = c10::BFloat16(acc[row][d] * inv).x;
  }
}

}  // namespace
#endif

#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)
namespace {

// Task bounds for `parts` threads: shares of about equal key rows (a tile late in the chunk reads more
// keys than an early one).
std::vector<int64_t> tile_shares(int64_t tiles, int64_t hkv, int64_t p0, int64_t parts) {
  std::vector<int64_t> cost(tiles * hkv);
  for (int64_t task = 0; task < tiles * hkv; ++task) cost[task] = p0 + (task / hkv + 1) * kTile;
  return shares::balanced_bounds(cost, parts);
}

}  // namespace
#endif

std::string isa_level() { return isa_level_name(); }

bool prefill_attention_supported() {
#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)
  return true;
#else
  return false;
#endif
}

at::Tensor prefill_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                             const at::Tensor& block_table, int64_t context_len, double scale) {
  TORCH_CHECK(prefill_attention_supported(), "prefill_attention needs the avx512 or avx2 build");
  TORCH_CHECK(q.device().is_cpu() && q.scalar_type() == at::kBFloat16 && q.dim() == 3 && q.is_contiguous() &&
                  q.size(2) == 64, "q must be a contiguous bf16 [T, Hq, 64] CPU tensor");
  TORCH_CHECK(k_cache.scalar_type() == at::kBFloat16 && v_cache.scalar_type() == at::kBFloat16 && k_cache.dim() == 4 &&
                  k_cache.size(3) == 64 && k_cache.stride(3) == 1 && v_cache.sizes() == k_cache.sizes() &&
                  v_cache.strides() == k_cache.strides(),
              "caches must be bf16 [num_blocks, block_size, Hkv, 64] views of one layout, unit stride in D");
  TORCH_CHECK(q.size(1) % k_cache.size(2) == 0 && q.size(1) / k_cache.size(2) <= 8,
              "Hq must be a multiple of Hkv, at most 8 query heads per KV head");
  const int64_t T = q.size(0), bs = k_cache.size(1);
  TORCH_CHECK(T >= 1 && T <= context_len, "the chunk must hold 1 .. context_len tokens");
  TORCH_CHECK(block_table.scalar_type() == at::kLong && block_table.dim() == 1 && block_table.is_contiguous() &&
                  block_table.size(0) * bs >= context_len, "block_table must be contiguous int64 covering the context");
  at::Tensor out = at::empty_like(q);
#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)
  const int64_t hq = q.size(1), hkv = k_cache.size(2), p0 = context_len - T;
  const int64_t tiles = (T + kTile - 1) / kTile;
  const auto* qp = reinterpret_cast<const uint16_t*>(q.data_ptr());
  const auto* kp = reinterpret_cast<const uint16_t*>(k_cache.data_ptr());
  const auto* vp = reinterpret_cast<const uint16_t*>(v_cache.data_ptr());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t* tp = block_table.data_ptr<int64_t>();
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tiles * hkv));
  const std::vector<int64_t> bounds = tile_shares(tiles, hkv, p0, parts);
  at::parallel_for(0, parts, 1, [&](int64_t first_part, int64_t last_part) {
    for (int64_t task = bounds[first_part]; task < bounds[last_part]; ++task)
      attend_tile(qp, kp, vp, tp, op, T, hq, hkv, bs, k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), p0,
                  static_cast<float>(scale), task % hkv, task / hkv);
  });
#endif
  return out;
}
