// The functions the CPU kernels' source files define for each other; `cpu_ops.cpp` binds them.
#pragma once

#include <torch/extension.h>

// RMSNorm of x [T, H] by weight [H] -> [T, H].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// silu(gate) * up of a fused [T, 2I] projection -> [T, I].
at::Tensor silu_and_mul(const at::Tensor& gate_up);

// Rotate x [T, H, D] (unit stride in D) in place by cos/sin [T, 1, D], rotate-half layout.
void rotary_(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin);

// Decode attention over the paged cache: q [N, Hq, D], caches [num_blocks, block_size, Hkv, D],
// block_tables [N, max_blocks] int64, context_lens [N] int64 -> [N, Hq, D].
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                            int64_t window);

// x [M, K] @ w.T for a 4- or 8-bit weight w [N, K] in the tiled layout of `quant_matmul.cpp` -> [M, N],
// in x's dtype.
at::Tensor quant_matmul(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n);

// Each row's argmax, as torch.argmax(logits, dim=-1): logits [S, V] float32 -> [S] int64.
at::Tensor argmax_rows(const at::Tensor& logits);

// Registers `DecodeStack` (decode_stack.cpp) in the module.
void bind_decode_stack(pybind11::module& m);
