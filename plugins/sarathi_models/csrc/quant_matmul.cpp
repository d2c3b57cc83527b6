// Weight-quantized matmul for small steps, in llama.cpp's arithmetic: 4- or 8-bit weight codes times
// 8-bit activations.
//
// A decode step reads every weight once for a handful of rows, so its cost is bytes and the work per
// byte must stay small. torch's int4 kernel widens each weight to bf16 before multiplying (about 17 GB/s
// of weights on one row, and slower than the bf16 GEMM at 16 rows on a 2-core Zen 4). Here the
// activations are quantized instead, per group of 32 inputs to int8 with one fp32 scale (as llama.cpp's
// Q8_1 does), and the unsigned weight codes multiply them as bytes with AVX-512 VNNI (`vpdpbusd`): 64
// products per instruction, no widening of the weights at all.
//
// Weight: w[n][k] = d[n][g] * c[n][k] + m[n][g] for k in group g, c an unsigned code: GGUF Q4_1 as
// stored (c = q in 0..15), Q4_0 with m = -8 d, Q8_0 with c = q + 128 and m = -128 d. With the
// activation's group x ~ da * xq, one group of one output row contributes
//     d * da * sum_k c[k] xq[k]   +   m * da * sum_k xq[k],
// which is sum_k w[k] (da xq[k]) exactly (in fp32): the only rounding beyond fp32 is the activation's
// int8 code, as in llama.cpp's Q4_1 x Q8_1.
//
// Layout (`pack_codes` in `quant.py` builds it): output rows in tiles of 16, one per 32-bit lane.
//   codes  4-bit: [N/16, G, 4, 64] uint8: for tile t, group g, chunk s, byte 4 i + j holds
//                 c[16 t + i][32 g + 4 s + j] (low nibble) and c[16 t + i][32 g + 4 (s + 4) + j] (high),
//                 so one 64-byte load gives inputs 4s..4s+3 and 4s+16..4s+19 of all 16 rows;
//          8-bit: [N/16, G, 8, 64] uint8: byte 4 i + j of chunk s is c[16 t + i][32 g + 4 s + j];
//   scales [N/16, G, 2, 16] fp16: d then m of the tile's 16 rows for group g.

#include "isa.h"
#include "ops.h"
#include "shares.h"

#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kTile = 16;
constexpr int64_t kGroup = 32;
constexpr int64_t kRowsPerPass = 8;  // activation rows per pass over a tile: 8 accumulators + 8 codes fit

using shares::QuantizedRows;

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

// One tile's 16 outputs for `rows` activation rows (at most kRowsPerPass), into y [rows, 16] fp32.
//
// Every level computes the same bits: each group's dot product is an exact int32, and each output's
// fp32 accumulator takes the groups in order as acc = fma(dot, d * da, acc), then acc = fma(m, da sum, acc).
template <int Bits, int Rows>
void tile_pass(const uint8_t* codes, const at::Half* scales, int64_t groups, const QuantizedRows& act,
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
#else
  for (int r = 0; r < Rows; ++r) {
    const int64_t row = first_row + r;
    for (int64_t lane = 0; lane < kTile; ++lane) {
      float total = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot = 0;
        const int8_t* xq = act.codes.data() + row * k + g * kGroup;
        for (int64_t j = 0; j < kGroup; ++j) dot += code_at<Bits>(codes + g * kGroupBytes<Bits>, lane, j) * xq[j];
        const float d = static_cast<float>(scales[g * 32 + lane]), m = static_cast<float>(scales[g * 32 + 16 + lane]);
        total = std::fma(static_cast<float>(dot), d * act.scale[row * groups + g], total);
        total = std::fma(m, act.sum[row * groups + g], total);
      }
      y[r * kTile + lane] = total;
    }
  }
#endif
}

using TilePass = void (*)(const uint8_t*, const at::Half*, int64_t, const QuantizedRows&, int64_t, int64_t, float*);
template <int Bits>
constexpr TilePass kPasses[kRowsPerPass] = {tile_pass<Bits, 1>, tile_pass<Bits, 2>, tile_pass<Bits, 3>,
                                            tile_pass<Bits, 4>, tile_pass<Bits, 5>, tile_pass<Bits, 6>,
                                            tile_pass<Bits, 7>, tile_pass<Bits, 8>};

// Output tiles [begin, end) of the quantized rows act [M, K] @ w.T into out [M, N].
template <typename T, int Bits>
void matmul_tiles(const QuantizedRows& act, int64_t m, int64_t k, const uint8_t* cp, const at::Half* sp, int64_t n,
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

// x [M, K] of type T quantized, times the weight, into out [M, N] of type U.
template <typename T, typename U, int Bits>
void quant_matmul_impl(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, at::Tensor& out) {
  const int64_t m = x.size(0), k = x.size(1), n = out.size(1);
  QuantizedRows act = shares::quantized_rows(m, k);
  quantize_range(x.data_ptr<T>(), k, act, 0, m);
  at::parallel_for(0, codes.size(0), 1, [&](int64_t begin, int64_t end) {
    matmul_tiles<U, Bits>(act, m, k, codes.data_ptr<uint8_t>(), scales.data_ptr<at::Half>(), n, out.data_ptr<U>(),
                          begin, end);
  });
}

template <typename T>
void quant_matmul_of(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, at::Tensor& out) {
  const bool four_bit = codes.size(2) == 4;
  if (out.scalar_type() == at::kFloat) {
    if (four_bit) quant_matmul_impl<T, float, 4>(x, codes, scales, out);
    else quant_matmul_impl<T, float, 8>(x, codes, scales, out);
  } else {
    if (four_bit) quant_matmul_impl<T, T, 4>(x, codes, scales, out);
    else quant_matmul_impl<T, T, 8>(x, codes, scales, out);
  }
}

}  // namespace

at::Tensor quant_matmul(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n,
                        bool float_out) {
  TORCH_CHECK(x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16),
              "x must be a float32 or bfloat16 CPU tensor, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 2 && x.size(1) % kGroup == 0, "x must be [M, K] with K a multiple of 32");
  const int64_t groups = x.size(1) / kGroup, tiles = (n + kTile - 1) / kTile;
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous() && codes.dim() == 4 &&
                  codes.size(0) == tiles && codes.size(1) == groups &&
                  (codes.size(2) == 4 || codes.size(2) == 8) && codes.size(3) == 64,
              "codes must be contiguous uint8 [ceil(N / 16), K / 32, 4 or 8, 64]");
  TORCH_CHECK(scales.scalar_type() == at::kHalf && scales.is_contiguous() && scales.dim() == 4 &&
                  scales.size(0) == tiles && scales.size(1) == groups && scales.size(2) == 2 && scales.size(3) == 16,
              "scales must be contiguous float16 [ceil(N / 16), K / 32, 2, 16]");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({x.size(0), n}, float_out ? x.options().dtype(at::kFloat) : x.options());
  if (x.scalar_type() == at::kFloat) quant_matmul_of<float>(xc, codes, scales, out);
  else quant_matmul_of<at::BFloat16>(xc, codes, scales, out);
  return out;
}

namespace shares {

QuantizedRows quantized_rows(int64_t m, int64_t k) {
  const int64_t groups = m * (k / kGroup);
  return {std::vector<int8_t>(m * k), std::vector<float>(groups), std::vector<float>(groups), std::vector<int32_t>(groups)};
}

void quantize(const bf16* x, int64_t k, QuantizedRows& rows, Range range) {
  quantize_range(x, k, rows, range.begin, range.end);
}

int64_t quant_tiles(int64_t n) { return (n + kTile - 1) / kTile; }

void quant_matmul(const QuantizedRows& rows, int64_t m, int64_t k, const at::Tensor& codes, const at::Tensor& scales,
                  int64_t n, bf16* out, Range tiles) {
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const at::Half* sp = scales.data_ptr<at::Half>();
  if (codes.size(2) == 4) matmul_tiles<bf16, 4>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
  else matmul_tiles<bf16, 8>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
}

}  // namespace shares
