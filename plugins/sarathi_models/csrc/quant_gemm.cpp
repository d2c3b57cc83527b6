// Tensor binding of `quant_gemm_core.h`: y = x @ w.T for a tiled quantized weight and many rows of x,
// on the avx512, avx2 and neon levels; tile pairs split over ATen's threads.

#include "ops.h"
#include "quant_gemm_core.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

bool quant_gemm_supported() {
#if defined(SARATHI_QUANT_GEMM)
  return true;
#else
  return false;
#endif
}

at::Tensor quant_gemm(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n) {
  TORCH_CHECK(quant_gemm_supported(), "quant_gemm needs the avx512, avx2 or neon build");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kBFloat16 && x.dim() == 2,
              "x must be a bfloat16 [M, K] CPU tensor");
  check_quantized_weight(codes, scales, n);
  TORCH_CHECK(x.size(1) == codes.size(1) * quant::kGroup, "x has ", x.size(1), " inputs but the codes hold ",
              codes.size(1) * quant::kGroup);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({x.size(0), n}, x.options());
#if defined(SARATHI_QUANT_GEMM)
  const int64_t m = x.size(0), k = x.size(1), pairs = (codes.size(0) + 1) / 2;
  const auto* xp = reinterpret_cast<const uint16_t*>(xc.data_ptr());
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const auto* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int format = quant_format(codes, scales);
  at::parallel_for(0, pairs, 1, [&](int64_t begin, int64_t end) {
    if (format == quant::kFour) quant::gemm_tile_pairs<quant::kFour>(xp, m, k, cp, sp, n, op, begin, end);
    else if (format == quant::kFive) quant::gemm_tile_pairs<quant::kFive>(xp, m, k, cp, sp, n, op, begin, end);
    else if (format == quant::kEight) quant::gemm_tile_pairs<quant::kEight>(xp, m, k, cp, sp, n, op, begin, end);
    else if (format == quant::kSixHalves) quant::gemm_tile_pairs<quant::kSixHalves>(xp, m, k, cp, sp, n, op, begin, end);
    else quant::gemm_tile_pairs<quant::kEightHalves>(xp, m, k, cp, sp, n, op, begin, end);
  });
#endif
  return out;
}
