// Every decoder layer of a Llama-family model for one decode step of few rows, in one call.
//
// A batch-1 decode step of SmolLM2-135M on a 2-core Zen 4 spends about 2.3 ms of its 7 ms in the
// layer matmuls and 0.3 ms in attention; most of the rest is Python: 30 layers of module calls,
// views and small torch ops, each a few microseconds. Here the same kernels run in the same order from
// C++ (RMSNorm, the packed-weight matmuls, rotary, the KV-cache write, paged decode attention, SwiGLU,
// the residual adds), so a step's result is bit for bit the one the Python layers compute.
//
// The whole step is one OpenMP parallel region: each kernel's work is split over the region's threads
// here (`shares.h`) and the threads meet at a barrier between dependent kernels, about ten a layer
// (`SpinBarrier`: it spins briefly, then sleeps). One region a kernel instead costs 32 us a region whenever another thread of the process holds
// an OpenMP team of its own (see `shares.h`): a 16-decode step took 25 ms instead of 14.
//
// Built once per model by `decode_stack.py` when every layer qualifies (packed weights, no biases, the
// "cpu" attention backend); it holds the layers' weights and KV caches.

#include "ops.h"
#include "row_kernels.h"
#include "shares.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>
#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

namespace {

using shares::bf16;
using shares::Range;

// The threads of one parallel region waiting for each other between kernels. A waiter spins (with
// `pause`) for a few tens of microseconds, long enough for the usual wait between two balanced kernels,
// then sleeps on a futex (C++20 atomic wait) until the last party arrives, which wakes sleepers only
// when there are any. Spinning, then yielding (this barrier before 2026-12-07) burns the time slices
// the awaited thread needs when the cores are shared: beside one busy process per core, decode fell to
// 1-3 tok/s on a Zen 3. libgomp's own barrier sleeps too soon instead (see the file comment).
class SpinBarrier {
 public:
  void reset(int parties) { parties_ = parties; }

  void wait() {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
      return;
    }
    for (int spins = 0; spins < kSpins; ++spins) {
      if (generation_.load(std::memory_order_acquire) != generation) return;
#if defined(__x86_64__)
      _mm_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (generation_.load(std::memory_order_seq_cst) == generation) generation_.wait(generation);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static constexpr int kSpins = 1 << 11;
  int parties_ = 1;
  std::atomic<int> arrived_{0}, generation_{0}, sleepers_{0};
};

// Rows of k, v (row stride `stride`, Hkv x D values each) into the caches' flat slots slot_mapping [T].
void write_kv(const bf16* k, const bf16* v, int64_t stride, bf16* k_cache, bf16* v_cache, int64_t row,
              const int64_t* slots, Range rows) {
  for (int64_t t = rows.begin; t < rows.end; ++t) {
    std::memcpy(k_cache + slots[t] * row, k + t * stride, row * sizeof(bf16));
    std::memcpy(v_cache + slots[t] * row, v + t * stride, row * sizeof(bf16));
  }
}

}  // namespace

DecodeStack::DecodeStack(const std::vector<std::vector<at::Tensor>>& layers, const std::vector<int64_t>& windows,
                         int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t hidden,
                         int64_t intermediate, double eps, double scale)
    : num_heads_(num_heads), num_kv_heads_(num_kv_heads), head_dim_(head_dim), eps_(eps), scale_(scale) {
  TORCH_CHECK(layers.size() == windows.size(), "one window per layer expected");
  const int64_t qkv = (num_heads + 2 * num_kv_heads) * head_dim;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& t = layers[i];
    TORCH_CHECK(t.size() == 12, "layer ", i, ": 12 tensors expected, got ", t.size());
    for (const auto& tensor : t)
      TORCH_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(), "layer ", i, ": contiguous CPU tensors expected");
    TORCH_CHECK(t[0].scalar_type() == at::kBFloat16 && t[10].scalar_type() == at::kBFloat16,
                "layer ", i, ": bfloat16 norms and caches expected");
    layers_.push_back(Layer{t[0], t[5], t[10], t[11], {t[1], t[2], qkv}, {t[3], t[4], hidden},
                            {t[6], t[7], 2 * intermediate}, {t[8], t[9], hidden}, windows[i]});
  }
}

void DecodeStack::apply(const PackedLinear& linear, const shares::QuantizedRows& act, int64_t rows, int64_t k,
                        bf16* out, int index, int parties) {
  shares::quant_matmul(act, rows, k, linear.codes, linear.scales, linear.out_features, out,
                       shares::slice(shares::quant_tiles(linear.out_features), index, parties));
}

at::Tensor DecodeStack::run(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slot_mapping,
                            const at::Tensor& block_tables, const at::Tensor& context_lens) const {
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous(), "x must be contiguous bf16 [T, H]");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.numel() == x.size(0) && slot_mapping.is_contiguous(),
              "slot_mapping must be contiguous int64 [T]");
  TORCH_CHECK(cos.scalar_type() == at::kBFloat16 && sin.scalar_type() == at::kBFloat16 && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.numel() == x.size(0) * head_dim_ && sin.numel() == cos.numel(),
              "cos and sin must be contiguous bf16 [T, 1, D]");
  TORCH_CHECK(block_tables.scalar_type() == at::kLong && block_tables.dim() == 2 && block_tables.is_contiguous() &&
                  block_tables.size(0) == x.size(0), "block_tables must be contiguous int64 [T, max_blocks]");
  TORCH_CHECK(context_lens.scalar_type() == at::kLong && context_lens.numel() == x.size(0) && context_lens.is_contiguous(),
              "context_lens must be contiguous int64 [T]");
  const int64_t t = x.size(0), hidden = x.size(1), d = head_dim_;
  const int64_t q_size = num_heads_ * d, kv_size = num_kv_heads_ * d, qkv_size = q_size + 2 * kv_size;
  const int64_t inter = layers_.front().gate_up.out_features / 2, threads = at::get_num_threads();
  at::Tensor h = x.clone();  // [T, H], the residual stream, updated in place
  at::Tensor normed = at::empty_like(x);  // [T, H]
  at::Tensor qkv = at::empty({t, qkv_size}, x.options());  // [T, (Hq + 2 Hkv) D]
  at::Tensor attended = at::empty({t, q_size}, x.options());  // [T, Hq D]
  at::Tensor proj = at::empty_like(x);  // [T, H]
  at::Tensor up = at::empty({t, 2 * inter}, x.options());  // [T, 2I]
  at::Tensor mid = at::empty({t, inter}, x.options());  // [T, I]
  shares::QuantizedRows act = shares::quantized_rows(t, std::max({hidden, q_size, inter}));
  bf16 *hp = shares::bf16_data(h), *np = shares::bf16_data(normed), *qkvp = shares::bf16_data(qkv);
  bf16 *ap = shares::bf16_data(attended), *pp = shares::bf16_data(proj), *up_p = shares::bf16_data(up), *mp = shares::bf16_data(mid);
  const bf16 *cp = shares::bf16_data(cos), *sp = shares::bf16_data(sin);
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  std::vector<shares::PagedDecodes> attention;
  for (const Layer& layer : layers_)
    attention.push_back(shares::paged_decodes(qkvp, qkv_size, ap, q_size, layer.k_cache, layer.v_cache, block_tables,
                                              context_lens, num_heads_, scale_, layer.window, threads));
  std::vector<std::vector<int64_t>> attention_bounds(layers_.size());
  SpinBarrier barrier;
#pragma omp parallel num_threads(threads)
  {
    const int parties = omp_get_num_threads(), me = omp_get_thread_num();
    if (me == 0) {
      barrier.reset(parties);
      for (size_t l = 0; l < layers_.size(); ++l) attention_bounds[l] = shares::attention_shares(attention[l], parties);
    }
#pragma omp barrier
    const Range rows = shares::slice(t, me, parties);
    shares::rms_norm(hp, shares::bf16_data(layers_.front().input_norm), eps_, hidden, np, rows);
    shares::quantize(np, hidden, act, rows);
    barrier.wait();
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& layer = layers_[l];
      apply(layer.qkv, act, t, hidden, qkvp, me, parties);
      barrier.wait();
      shares::rotary(qkvp, qkv_size, num_heads_, d, d, cp, sp, rows);
      shares::rotary(qkvp + q_size, qkv_size, num_kv_heads_, d, d, cp, sp, rows);
      write_kv(qkvp + q_size, qkvp + q_size + kv_size, qkv_size, shares::bf16_data(layer.k_cache),
               shares::bf16_data(layer.v_cache), kv_size, slots, rows);
      barrier.wait();
      shares::decode_attention(attention[l], {attention_bounds[l][me], attention_bounds[l][me + 1]});
      barrier.wait();
      shares::quantize(ap, q_size, act, rows);
      barrier.wait();
      apply(layer.o, act, t, q_size, pp, me, parties);
      barrier.wait();
      kern::add_rows(hp, pp, hidden, rows.begin, rows.end);
      shares::rms_norm(hp, shares::bf16_data(layer.post_norm), eps_, hidden, np, rows);
      shares::quantize(np, hidden, act, rows);
      barrier.wait();
      apply(layer.gate_up, act, t, hidden, up_p, me, parties);
      barrier.wait();
      shares::silu_and_mul(up_p, inter, mp, rows);
      shares::quantize(mp, inter, act, rows);
      barrier.wait();
      apply(layer.down, act, t, inter, pp, me, parties);
      barrier.wait();
      kern::add_rows(hp, pp, hidden, rows.begin, rows.end);
      if (l + 1 < layers_.size()) {
        shares::rms_norm(hp, shares::bf16_data(layers_[l + 1].input_norm), eps_, hidden, np, rows);
        shares::quantize(np, hidden, act, rows);
      }
      barrier.wait();
    }
  }
  return h;
}
