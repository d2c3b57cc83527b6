// Tensor bindings of `dequant_core.h`: a tiled quantized weight back to bf16, whole (transposed, for a
// prefill chunk's GEMM) or by rows (an embedding lookup). Work splits over tiles or rows with ATen's
// threads.

#include "dequant_core.h"
#include "ops.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

namespace {

using quant::kGroup;
using quant::kTile;

template <int Format>
void transposed_into(const at::Tensor& codes, const at::Tensor& scales, int64_t n, at::Tensor& wt) {
  const int64_t k = codes.size(1) * kGroup;
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const uint16_t* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  uint16_t* out = reinterpret_cast<uint16_t*>(wt.data_ptr<at::BFloat16>());
  at::parallel_for(0, codes.size(0), quant::kTilesPerBlock, [&](int64_t begin, int64_t end) {
    quant::dequantize_transposed<Format>(cp, sp, k, n, out + begin * kTile, n, begin, end);
  });
}

template <int Format>
void rows_into(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& ids, at::Tensor& out) {
  const int64_t k = codes.size(1) * kGroup;
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const uint16_t* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  const int64_t* ip = ids.data_ptr<int64_t>();
  uint16_t* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  at::parallel_for(0, ids.size(0), 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) quant::dequantize_row<Format>(cp, sp, k, ip[r], op + r * k);
  });
}

}  // namespace

void dequantize_transposed(const at::Tensor& codes, const at::Tensor& scales, int64_t n, at::Tensor wt) {
  check_quantized_weight(codes, scales, n);
  TORCH_CHECK(wt.scalar_type() == at::kBFloat16 && wt.is_contiguous() && wt.dim() == 2 &&
                  wt.size(0) == codes.size(1) * kGroup && wt.size(1) == n,
              "wt must be a contiguous bfloat16 [K, N]");
  switch (quant_format(codes, scales)) {
    case quant::kFour: return transposed_into<quant::kFour>(codes, scales, n, wt);
    case quant::kFive: return transposed_into<quant::kFive>(codes, scales, n, wt);
    case quant::kEight: return transposed_into<quant::kEight>(codes, scales, n, wt);
    case quant::kSixHalves: return transposed_into<quant::kSixHalves>(codes, scales, n, wt);
    default: return transposed_into<quant::kEightHalves>(codes, scales, n, wt);
  }
}

at::Tensor dequantize_rows(const at::Tensor& codes, const at::Tensor& scales, int64_t n, const at::Tensor& ids) {
  check_quantized_weight(codes, scales, n);
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.dim() == 1, "ids must be int64 [R]");
  const at::Tensor idc = ids.contiguous();
  if (idc.numel() > 0) {
    const int64_t low = idc.min().item<int64_t>(), high = idc.max().item<int64_t>();
    TORCH_CHECK(low >= 0 && high < n, "row ids must lie in [0, ", n, "), got ", low, "..", high);
  }
  at::Tensor out = at::empty({idc.size(0), codes.size(1) * kGroup}, codes.options().dtype(at::kBFloat16));
  switch (quant_format(codes, scales)) {
    case quant::kFour: rows_into<quant::kFour>(codes, scales, idc, out); break;
    case quant::kFive: rows_into<quant::kFive>(codes, scales, idc, out); break;
    case quant::kEight: rows_into<quant::kEight>(codes, scales, idc, out); break;
    case quant::kSixHalves: rows_into<quant::kSixHalves>(codes, scales, idc, out); break;
    default: rows_into<quant::kEightHalves>(codes, scales, idc, out); break;
  }
  return out;
}
