// Weight-quantized matmul for small steps, in llama.cpp's arithmetic: 4- or 8-bit weight codes times
// 8-bit activations.
//
// A decode step reads every weight once for a handful of rows, so its cost is bytes and the work per
// byte must stay small. torch's int4 kernel widens each weight to bf16 before multiplying (about 17 GB/s
// of weights on one row, and slower than the bf16 GEMM at 16 rows on a 2-core Zen 4). Here the
// activations are quantized instead, per group of 32 inputs to int8 with one fp32 scale (as llama.cpp's
// Q8_1 does), and the unsigned weight codes multiply them as bytes with AVX-512 VNNI (`vpdpbusd`; AVX2:
// `vpmaddubsw` + `vpmaddwd`, the same exact integer sums, see `tile_pass`): 64
// products per instruction, no widening of the weights at all.
//
// Weight: w[n][k] = d[n][g] * c[n][k] + m[n][g] for k in group g, c an unsigned code: GGUF Q4_1 as
// stored (c = q in 0..15), Q4_0 with m = -8 d, Q5_1 and Q5_0 (m = -16 d) with 5-bit c, Q8_0 with
// c = q + 128 and m = -128 d. With the
// activation's group x ~ da * xq, one group of one output row contributes
//     d * da * sum_k c[k] xq[k]   +   m * da * sum_k xq[k],
// which is sum_k w[k] (da xq[k]) exactly (in fp32): the only rounding beyond fp32 is the activation's
// int8 code, as in llama.cpp's Q4_1 x Q8_1.
//
// Layout (`pack_codes` in `quant.py` builds it): output rows in tiles of 16, one per 32-bit lane.
//   codes  4-bit: [N/16, G, 4, 64] uint8: for tile t, group g, chunk s, byte 4 i + j holds
//                 c[16 t + i][32 g + 4 s + j] (low nibble) and c[16 t + i][32 g + 4 (s + 4) + j] (high),
//                 so one 64-byte load gives inputs 4s..4s+3 and 4s+16..4s+19 of all 16 rows;
//          5-bit: [N/16, G, 5, 64] uint8: the 4-bit layout of the codes' low nibbles, then 64 bytes whose
//                 bit 64 s + 4 i + j is the fifth bit of c[16 t + i][32 g + 4 s + j];
//          8-bit: [N/16, G, 8, 64] uint8: byte 4 i + j of chunk s is c[16 t + i][32 g + 4 s + j];
//          6-bit: [N/16, G, 6, 64] uint8: the 5-bit layout, then 64 bytes of sixth bits, the same way;
//   scales [N/16, G, 2, 16] fp16: d then m of the tile's 16 rows for group g; 6-bit codes have, and
//          8-bit codes may have, [N/16, G, 4, 16] instead: d and m of inputs 0-15, then of 16-31 (GGUF
//          Q6_K's sub-blocks of 16 weights; `quant_core.h`'s kSixHalves, kEightHalves).

#include "isa.h"
#include "ops.h"
#include "quant_core.h"
#include "shares.h"

#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

using quant::kGroup;
using quant::kTile;
using quant::QuantizedRows;
using quant::matmul_tiles;
using quant::quantize_range;

// x [M, K] of type T quantized, times the weight, into out [M, N] of type U.
template <typename T, typename U, int Format>
void quant_matmul_impl(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, at::Tensor& out) {
  const int64_t m = x.size(0), k = x.size(1), n = out.size(1);
  QuantizedRows act = shares::quantized_rows(m, k);
  quantize_range(static_cast<const T*>(x.data_ptr()), k, act, 0, m);
  at::parallel_for(0, codes.size(0), 1, [&](int64_t begin, int64_t end) {
    matmul_tiles<U, Format>(act, m, k, codes.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>()), n, static_cast<U*>(out.data_ptr()),
                          begin, end);
  });
}

template <typename T, typename U>
void quant_matmul_to(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, at::Tensor& out) {
  switch (quant_format(codes, scales)) {
    case quant::kFour: return quant_matmul_impl<T, U, quant::kFour>(x, codes, scales, out);
    case quant::kFive: return quant_matmul_impl<T, U, quant::kFive>(x, codes, scales, out);
    case quant::kEight: return quant_matmul_impl<T, U, quant::kEight>(x, codes, scales, out);
    case quant::kSixHalves: return quant_matmul_impl<T, U, quant::kSixHalves>(x, codes, scales, out);
    default: return quant_matmul_impl<T, U, quant::kEightHalves>(x, codes, scales, out);
  }
}

template <typename T>
void quant_matmul_of(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, at::Tensor& out) {
  if (out.scalar_type() == at::kFloat) quant_matmul_to<T, float>(x, codes, scales, out);
  else quant_matmul_to<T, T>(x, codes, scales, out);
}

}  // namespace

int quant_format(const at::Tensor& codes, const at::Tensor& scales) {
  if (codes.size(2) == 4) return quant::kFour;
  if (codes.size(2) == 5) return quant::kFive;
  if (codes.size(2) == 6) return quant::kSixHalves;
  return scales.size(2) == 4 ? quant::kEightHalves : quant::kEight;
}

void check_quantized_weight(const at::Tensor& codes, const at::Tensor& scales, int64_t n) {
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous() && codes.dim() == 4 &&
                  codes.size(0) == (n + kTile - 1) / kTile &&
                  (codes.size(2) == 4 || codes.size(2) == 5 || codes.size(2) == 6 || codes.size(2) == 8) &&
                  codes.size(3) == 64,
              "codes must be contiguous uint8 [ceil(N / 16), K / 32, 4, 5, 6 or 8, 64]");
  TORCH_CHECK(scales.scalar_type() == at::kHalf && scales.is_contiguous() && scales.dim() == 4 &&
                  scales.size(0) == codes.size(0) && scales.size(1) == codes.size(1) &&
                  ((scales.size(2) == 2 && codes.size(2) != 6) ||
                   (scales.size(2) == 4 && (codes.size(2) == 6 || codes.size(2) == 8))) &&
                  scales.size(3) == 16,
              "scales must be contiguous float16 [ceil(N / 16), K / 32, 2, 16] (or [.., 4, 16] for 6- and 8-bit "
              "codes; 6-bit codes always have them)");
}

at::Tensor quant_matmul(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n,
                        bool float_out) {
  TORCH_CHECK(x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16),
              "x must be a float32 or bfloat16 CPU tensor, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 2 && x.size(1) % kGroup == 0, "x must be [M, K] with K a multiple of 32");
  const int64_t groups = x.size(1) / kGroup;
  check_quantized_weight(codes, scales, n);
  TORCH_CHECK(codes.size(1) == groups, "x has ", x.size(1), " inputs but the codes hold ", codes.size(1) * kGroup);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({x.size(0), n}, float_out ? x.options().dtype(at::kFloat) : x.options());
  if (x.scalar_type() == at::kFloat) quant_matmul_of<float>(xc, codes, scales, out);
  else quant_matmul_of<kern::bf16>(xc, codes, scales, out);
  return out;
}

namespace shares {

QuantizedRows quantized_rows(int64_t m, int64_t k) {
  const int64_t groups = m * (k / kGroup);
  return {std::vector<int8_t>(m * k), std::vector<float>(groups), std::vector<float>(groups), std::vector<int32_t>(groups),
          std::vector<int32_t>(groups)};
}

void quantize(const bf16* x, int64_t k, QuantizedRows& rows, Range range) {
  quantize_range(x, k, rows, range.begin, range.end);
}

int64_t quant_tiles(int64_t n) { return (n + kTile - 1) / kTile; }

void quant_matmul(const QuantizedRows& rows, int64_t m, int64_t k, const at::Tensor& codes, const at::Tensor& scales,
                  int64_t n, bf16* out, Range tiles) {
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const uint16_t* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  switch (quant_format(codes, scales)) {
    case quant::kFour: return matmul_tiles<bf16, quant::kFour>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
    case quant::kFive: return matmul_tiles<bf16, quant::kFive>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
    case quant::kEight: return matmul_tiles<bf16, quant::kEight>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
    case quant::kSixHalves: return matmul_tiles<bf16, quant::kSixHalves>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
    default: return matmul_tiles<bf16, quant::kEightHalves>(rows, m, k, cp, sp, n, out, tiles.begin, tiles.end);
  }
}

}  // namespace shares
