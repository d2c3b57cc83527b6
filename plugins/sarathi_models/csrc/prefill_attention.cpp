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
// bf16, head_dim 64, no sliding window, the avx512, avx2 and neon levels (the arithmetic is
// `prefill_core.h`: the same bits on each; `prefill_attention_supported()` says whether this build
// has it); the attention backend keeps SDPA for everything else, the portable build included (SDPA is
// faster than the kernel's scalar form, which the portable build keeps for the cross-ISA checks).

#include "ops.h"
#include "prefill_core.h"

#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

std::string isa_level() { return isa_level_name(); }

bool prefill_attention_supported() {
#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2) || defined(SARATHI_NEON)
  return true;
#else
  return false;
#endif
}

at::Tensor prefill_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                             const at::Tensor& block_table, int64_t context_len, double scale) {
  TORCH_CHECK(prefill_attention_supported(), "prefill_attention needs the avx512, avx2 or neon build");
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
  const int64_t hq = q.size(1), hkv = k_cache.size(2), p0 = context_len - T;
  const int64_t tiles = (T + kern::kTile - 1) / kern::kTile;
  const auto* qp = reinterpret_cast<const uint16_t*>(q.data_ptr());
  const auto* kp = reinterpret_cast<const uint16_t*>(k_cache.data_ptr());
  const auto* vp = reinterpret_cast<const uint16_t*>(v_cache.data_ptr());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t* tp = block_table.data_ptr<int64_t>();
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tiles * hkv));
  const std::vector<int64_t> bounds = kern::tile_shares(tiles, hkv, p0, parts);
  at::parallel_for(0, parts, 1, [&](int64_t first_part, int64_t last_part) {
    for (int64_t task = bounds[first_part]; task < bounds[last_part]; ++task)
      kern::attend_tile(qp, kp, vp, tp, op, T, hq, hkv, bs, k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), p0,
                  static_cast<float>(scale), task % hkv, task / hkv);
  });
  return out;
}
