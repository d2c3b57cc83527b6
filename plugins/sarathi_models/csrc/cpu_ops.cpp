// Fused CPU kernels of the torch backend, bound to tensors: one call where eager torch needs five to
// fifteen small ops.
//
// A decode step of a small model on the CPU is dominated by per-op overhead (about a thousand ops of a
// few microseconds each) and by paged decode attention, which in plain torch copies every decode's
// whole context out of the paged cache per layer. These kernels read the paged cache in place through
// the block table and fold RMSNorm, rotary embedding and SwiGLU into one pass each. Their arithmetic is
// plain C++ (`row_kernels.h`, `decode_attention.h`), one order of sums on every ISA level, so a model's
// greedy text does not depend on the CPU; this file checks the tensors and splits rows over threads.
//
// Scalar types: float and bfloat16 (the CPU backend's two dtypes). Bound in `bindings.cpp`; `cpu_ops.py`
// compiles the files once per ISA level.

#include "decode_attention.h"
#include "ops.h"
#include "row_kernels.h"
#include "shares.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

using kern::bf16;

// A tensor's data as the cores' scalar type T (float, or bf16 for an at::kBFloat16 tensor).
template <typename T>
T* data_of(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

template <typename T>
void rms_norm_impl(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& out) {
  const int64_t hidden = x.size(1);
  at::parallel_for(0, x.size(0), 16, [&](int64_t begin, int64_t end) {
    kern::rms_norm_rows(data_of<T>(x), data_of<T>(w), eps, hidden, data_of<T>(out), begin, end);
  });
}

template <typename T>
void silu_and_mul_impl(const at::Tensor& gate_up, at::Tensor& out) {
  const int64_t inter = out.size(1);
  at::parallel_for(0, gate_up.size(0), 4, [&](int64_t begin, int64_t end) {
    kern::silu_and_mul_rows(data_of<T>(gate_up), inter, data_of<T>(out), begin, end);
  });
}

// x [T, H, D] rotated in place by cos/sin [T, D].
template <typename T>
void rotary_impl(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::parallel_for(0, x.size(0), 8, [&](int64_t begin, int64_t end) {
    kern::rotary_rows(data_of<T>(x), x.stride(0), x.size(1), x.stride(1), x.size(2), data_of<T>(cos),
                      data_of<T>(sin), begin, end);
  });
}

template <typename T>
kern::PagedDecodes<T> paged_decodes_of(const T* q, int64_t q_stride, T* out, int64_t out_stride,
                                       const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& tables,
                                       const at::Tensor& lengths, int64_t hq, double scale, int64_t window,
                                       int64_t threads) {
  const int64_t hkv = k_cache.size(2), n = tables.size(0);
  return {q, q_stride, out, out_stride, data_of<T>(k_cache), data_of<T>(v_cache), k_cache.size(1),
          k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), tables.data_ptr<int64_t>(), tables.size(1),
          lengths.data_ptr<int64_t>(), n, hq, hkv, k_cache.size(3), static_cast<float>(scale), window,
          kern::heads_per_task(n, hkv, hq / hkv, threads)};
}

// Decode attention over the paged cache, read in place through the block table.
// q [N, Hq, D]; caches [num_blocks, block_size, Hkv, D]; tables [N, max_blocks] int64;
// context_lens [N] int64; out [N, Hq, D]. One task per decode and group of KV heads (`heads_per_task`).
template <typename T>
void decode_attention_impl(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& tables, const at::Tensor& context_lens, double scale,
                           int64_t window, at::Tensor& out) {
  const int64_t hq = q.size(1), row = hq * q.size(2), threads = at::get_num_threads();
  const kern::PagedDecodes<T> layer = paged_decodes_of<T>(data_of<T>(q), row, data_of<T>(out), row, k_cache, v_cache,
                                                          tables, context_lens, hq, scale, window, threads);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, layer.tasks()));
  const std::vector<int64_t> bounds = kern::attention_shares_of(layer, parts);
  at::parallel_for(0, parts, 1, [&](int64_t first_part, int64_t last_part) {
    kern::attend_tasks(layer, bounds[first_part], bounds[last_part]);
  });
}

void check_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name,
              " must be float32 or bfloat16, got ", t.scalar_type());
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_dtype(x, "x");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x must be a contiguous [T, H] tensor");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type() && weight.numel() == x.size(1) && weight.is_contiguous(),
              "weight must be a contiguous [H] tensor of x's dtype");
  at::Tensor out = at::empty_like(x);
  if (x.scalar_type() == at::kFloat) rms_norm_impl<float>(x, weight, eps, out);
  else rms_norm_impl<bf16>(x, weight, eps, out);
  return out;
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  check_dtype(gate_up, "gate_up");
  TORCH_CHECK(gate_up.dim() == 2 && gate_up.is_contiguous() && gate_up.size(1) % 2 == 0,
              "gate_up must be a contiguous [T, 2I] tensor");
  at::Tensor out = at::empty({gate_up.size(0), gate_up.size(1) / 2}, gate_up.options());
  if (gate_up.scalar_type() == at::kFloat) silu_and_mul_impl<float>(gate_up, out);
  else silu_and_mul_impl<bf16>(gate_up, out);
  return out;
}

void rotary_(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin) {
  check_dtype(x, "x");
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "x must be [T, H, D] with unit stride in D");
  TORCH_CHECK(cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type(),
              "cos and sin must have x's dtype");
  TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous() && cos.numel() == x.size(0) * x.size(2) &&
              sin.numel() == cos.numel(), "cos and sin must be contiguous [T, D]");
  if (x.scalar_type() == at::kFloat) rotary_impl<float>(x, cos, sin);
  else rotary_impl<bf16>(x, cos, sin);
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                            int64_t window) {
  check_dtype(q, "q");
  TORCH_CHECK(q.dim() == 3 && q.is_contiguous(), "q must be a contiguous [N, Hq, D] tensor");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.stride(3) == 1 && v_cache.sizes() == k_cache.sizes() &&
                  v_cache.strides() == k_cache.strides(),
              "caches must be [num_blocks, block_size, Hkv, D] views of one layout, unit stride in D");
  TORCH_CHECK(k_cache.scalar_type() == q.scalar_type() && v_cache.scalar_type() == q.scalar_type(),
              "caches must have q's dtype");
  TORCH_CHECK(k_cache.size(3) == q.size(2) && q.size(1) % k_cache.size(2) == 0,
              "head_dim must match and Hq must be a multiple of Hkv");
  TORCH_CHECK(block_tables.scalar_type() == at::kLong && block_tables.dim() == 2 && block_tables.is_contiguous() &&
              block_tables.size(0) == q.size(0), "block_tables must be contiguous [N, max_blocks] int64");
  TORCH_CHECK(context_lens.scalar_type() == at::kLong && context_lens.numel() == q.size(0) &&
              context_lens.is_contiguous(), "context_lens must be contiguous [N] int64");
  at::Tensor out = at::empty_like(q);
  if (q.scalar_type() == at::kFloat)
    decode_attention_impl<float>(q, k_cache, v_cache, block_tables, context_lens, scale, window, out);
  else
    decode_attention_impl<bf16>(q, k_cache, v_cache, block_tables, context_lens, scale, window, out);
  return out;
}

namespace shares {

void rms_norm(const bf16* x, const bf16* weight, double eps, int64_t hidden, bf16* out, Range rows) {
  kern::rms_norm_rows(x, weight, eps, hidden, out, rows.begin, rows.end);
}

void silu_and_mul(const bf16* gate_up, int64_t inter, bf16* out, Range rows) {
  kern::silu_and_mul_rows(gate_up, inter, out, rows.begin, rows.end);
}

void rotary(bf16* x, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim, const bf16* cos,
            const bf16* sin, Range tokens) {
  kern::rotary_rows(x, token_stride, heads, head_stride, dim, cos, sin, tokens.begin, tokens.end);
}

PagedDecodes paged_decodes(const bf16* q, int64_t q_stride, bf16* out, int64_t out_stride, const at::Tensor& k_cache,
                           const at::Tensor& v_cache, const at::Tensor& tables, const at::Tensor& lengths, int64_t hq,
                           double scale, int64_t window, int64_t threads) {
  return paged_decodes_of<bf16>(q, q_stride, out, out_stride, k_cache, v_cache, tables, lengths, hq, scale, window,
                                threads);
}

std::vector<int64_t> attention_shares(const PagedDecodes& layer, int64_t parts) {
  return kern::attention_shares_of(layer, parts);
}

void decode_attention(const PagedDecodes& layer, Range tasks) { kern::attend_tasks(layer, tasks.begin, tasks.end); }

}  // namespace shares
