// The functions and the class the CPU kernels' source files define for each other; `bindings.cpp`
// binds them. Only ATen's core headers here: torch/extension.h (pybind11 and all of torch) takes
// about 20 s to compile per file, so only `bindings.cpp` includes it.
#pragma once

#include <ATen/core/Tensor.h>

#include "shares.h"

#include <cstdint>
#include <string>
#include <vector>

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

// Prefill-chunk attention over the paged cache (prefill_attention.cpp): q [T, Hq, 64] bf16, the chunk's
// last T positions of a context_len-token context; block_table [max_blocks] int64 -> [T, Hq, 64].
at::Tensor prefill_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                             const at::Tensor& block_table, int64_t context_len, double scale);
// Whether this build has `prefill_attention` (it needs AVX-512 BF16).
bool prefill_attention_supported();

// The ISA level this build was compiled for: "avx512", "avx2" or "portable" (isa.h).
std::string isa_level();

// x [M, K] @ w.T for a 4- or 8-bit weight w [N, K] in the tiled layout of `quant_matmul.cpp` -> [M, N],
// in x's dtype, or float32 with float_out (the LM head's logits, never rounded to bf16).
at::Tensor quant_matmul(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n,
                        bool float_out);

// The weight format (quant_core.h's kFour, kFive, kEight, kSixHalves, kEightHalves) of tiled codes and scales.
int quant_format(const at::Tensor& codes, const at::Tensor& scales);
// Checks codes and scales against the tiled layout of a weight with n outputs (TORCH_CHECK).
void check_quantized_weight(const at::Tensor& codes, const at::Tensor& scales, int64_t n);

// The tiled weight [N, K] dequantized to bf16 into wt [K, N], transposed (dequant_core.h).
void dequantize_transposed(const at::Tensor& codes, const at::Tensor& scales, int64_t n, at::Tensor wt);
// Rows `ids` [R] (int64) of the tiled weight [N, K] dequantized to bf16 -> [R, K] (an embedding lookup).
at::Tensor dequantize_rows(const at::Tensor& codes, const at::Tensor& scales, int64_t n, const at::Tensor& ids);

// x [M, K] bf16 @ w.T for a tiled weight w [N, K] and many rows, without a bf16 copy of w
// (quant_gemm_core.h; the avx512, avx2 and neon builds: `quant_gemm_supported`) -> [M, N] bf16.
at::Tensor quant_gemm(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n);
bool quant_gemm_supported();

// Each row's argmax, as torch.argmax(logits, dim=-1): logits [S, V] float32 -> [S] int64.
at::Tensor argmax_rows(const at::Tensor& logits);

// In place, -inf for every token of row rows[m] of logits [S, V] float32 that the grammar bitmask
// words[m] (int32 [W]; bit j of word w: token 32 w + j) does not allow (token_bitmask.cpp).
void mask_disallowed_(at::Tensor logits, const std::vector<int64_t>& rows, const std::vector<at::Tensor>& words);

// Every decoder layer of a Llama-family model for one decode step of few rows (decode_stack.cpp).
class DecodeStack {
 public:
  // layers: per layer [input_norm, qkv codes, qkv scales, o codes, o scales, post_norm, gate_up codes,
  // gate_up scales, down codes, down scales, k_cache, v_cache]; windows: per layer, 0 for none.
  DecodeStack(const std::vector<std::vector<at::Tensor>>& layers, const std::vector<int64_t>& windows,
              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t hidden, int64_t intermediate,
              double eps, double scale);

  // x [T, H] bf16 hidden states of T decodes; cos, sin [T, 1, D]; slot_mapping [T]; block_tables
  // [T, max_blocks]; context_lens [T] -> [T, H], after the last layer (before the final norm).
  at::Tensor run(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slot_mapping,
                 const at::Tensor& block_tables, const at::Tensor& context_lens) const;

 private:
  struct PackedLinear {
    at::Tensor codes, scales;
    int64_t out_features;
  };
  struct Layer {
    at::Tensor input_norm, post_norm, k_cache, v_cache;
    PackedLinear qkv, o, gate_up, down;
    int64_t window;
  };
  // Output tiles of `linear` for participant `index` of `parties`: act [rows, k] -> out [rows, N].
  static void apply(const PackedLinear& linear, const shares::QuantizedRows& act, int64_t rows, int64_t k,
                    shares::bf16* out, int index, int parties);

  std::vector<Layer> layers_;
  int64_t num_heads_, num_kv_heads_, head_dim_;
  double eps_, scale_;
};
