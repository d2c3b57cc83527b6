// The functions one source file of the CPU kernels defines and `cpu_ops.cpp` binds into the module.
#pragma once

#include <torch/extension.h>

// x [M, K] @ w.T for a 4- or 8-bit weight w [N, K] in the tiled layout of `quant_matmul.cpp` -> [M, N],
// in x's dtype.
at::Tensor quant_matmul(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n);
