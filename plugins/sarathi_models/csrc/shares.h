// The kernels' loops over rows, output tiles and attention tasks, for a caller that splits one step's
// work over threads itself.
//
// The tensor-level kernels of `ops.h` each open an OpenMP region (`at::parallel_for`). That costs about
// 1.5 us a region while the process has a single OpenMP team, but libgomp counts the threads of every
// team: once another thread of the process has run a parallel region too (an app's torch op on its
// main thread, a second engine), they outnumber the CPUs and every team stops spinning between regions
// and sleeps instead, and waking it took 32 us a region on a 2-core VM (2026-11-30). A decode step's
// 240 regions then cost 8 ms of a 14 ms step. The decode stack (`decode_stack.cpp`) therefore runs a
// whole step in one region and splits each kernel's work itself with these functions; the tensor-level
// kernels run the same functions, so both compute the same bits. bf16 only, as the decode stack.
#pragma once

#include <ATen/core/Tensor.h>

#include "balance.h"
#include "bf16.h"
#include "decode_attention.h"
#include "quant_core.h"

#include <cstdint>
#include <vector>

namespace shares {

using kern::bf16;
using kern::Range;
using kern::slice;
using kern::balanced_bounds;

// A bf16 tensor's data as the cores' bf16.
inline bf16* bf16_data(const at::Tensor& t) { return static_cast<bf16*>(t.data_ptr()); }

// Rows [begin, end) of RMSNorm: x [T, H] by weight [H] -> out [T, H].
void rms_norm(const bf16* x, const bf16* weight, double eps, int64_t hidden, bf16* out, Range rows);

// Rows [begin, end) of silu(gate) * up: gate_up [T, 2I] -> out [T, I].
void silu_and_mul(const bf16* gate_up, int64_t inter, bf16* out, Range rows);

// Tokens [begin, end) rotated in place by cos/sin [T, D] (rotate-half layout): token t's head h starts at
// x + t * token_stride + h * head_stride.
void rotary(bf16* x, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim, const bf16* cos,
            const bf16* sin, Range tokens);

// Activation rows quantized per group of 32 inputs (quant_core.h).
using QuantizedRows = quant::QuantizedRows;
// Room for m rows of k inputs (k a multiple of 32).
QuantizedRows quantized_rows(int64_t m, int64_t k);
// Rows [begin, end) of x [M, K] into `rows`, laid out for K inputs.
void quantize(const bf16* x, int64_t k, QuantizedRows& rows, Range range);
// Output tiles [begin, end) (16 outputs each; `quant_tiles(n)` of them) of rows [M, K] @ w.T -> out [M, N],
// w the tiled codes [ceil(N / 16), K / 32, bits, 64] uint8 and scales [ceil(N / 16), K / 32, 2, 16] fp16.
void quant_matmul(const QuantizedRows& rows, int64_t m, int64_t k, const at::Tensor& codes,
                  const at::Tensor& scales, int64_t n, bf16* out, Range tiles);
int64_t quant_tiles(int64_t n);

// One layer's decode attention over the paged cache (decode_attention.h).
using PagedDecodes = kern::PagedDecodes<bf16>;
// The layer's attention, q and out as above; heads per task chosen for `threads` threads.
PagedDecodes paged_decodes(const bf16* q, int64_t q_stride, bf16* out, int64_t out_stride, const at::Tensor& k_cache,
                           const at::Tensor& v_cache, const at::Tensor& tables, const at::Tensor& lengths, int64_t hq,
                           double scale, int64_t window, int64_t threads);
// parts + 1 task bounds: shares of about equal context rows.
std::vector<int64_t> attention_shares(const PagedDecodes& layer, int64_t parts);
// Tasks [begin, end).
void decode_attention(const PagedDecodes& layer, Range tasks);

}  // namespace shares
