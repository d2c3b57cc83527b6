// Every decoder layer of a Llama-family model for one decode step of few rows, in one call.
//
// A batch-1 decode step of SmolLM2-135M on a 2-core Zen 4 spends about 2.3 ms of its 7 ms in the
// layer matmuls and 0.3 ms in attention; most of the rest is Python: 30 layers of module calls,
// views and small torch ops, each a few microseconds. Here the same kernels run in the same order from
// C++ (RMSNorm, the packed-weight matmuls, rotary, the KV-cache write, paged decode attention, SwiGLU,
// the residual adds), so a step's result is bit for bit the one the Python layers compute.
//
// Built once per model by `decode_stack.py` when every layer qualifies (packed weights, no biases, the
// "cpu" attention backend); it holds the layers' weights and KV caches.

#include "ops.h"

#include <ATen/ops/empty_like.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cstring>
#include <vector>

namespace {

// a + b [T, H] as eager torch adds two bf16 tensors: in fp32, rounded once to nearest even.
at::Tensor residual_add(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor out = at::empty_like(a);
  const at::BFloat16* ap = a.data_ptr<at::BFloat16>();
  const at::BFloat16* bp = b.data_ptr<at::BFloat16>();
  at::BFloat16* op = out.data_ptr<at::BFloat16>();
  int64_t i = 0;
#if defined(__AVX512BF16__)
  auto widen = [](const at::BFloat16* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  };
  for (; i + 16 <= a.numel(); i += 16) {
    const __m256bh sum = _mm512_cvtneps_pbh(_mm512_add_ps(widen(ap + i), widen(bp + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(op + i), (__m256i)sum);
  }
#endif
  for (; i < a.numel(); ++i)
    op[i] = static_cast<at::BFloat16>(static_cast<float>(ap[i]) + static_cast<float>(bp[i]));
  return out;
}

// Rows k, v [T, Hkv, D] (unit stride within a row) into the caches' flat slots slot_mapping [T].
void write_kv(const at::Tensor& k, const at::Tensor& v, const at::Tensor& k_cache, const at::Tensor& v_cache,
              const at::Tensor& slot_mapping) {
  const int64_t row = k_cache.size(2) * k_cache.size(3);
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  auto* kc = k_cache.data_ptr<at::BFloat16>();
  auto* vc = v_cache.data_ptr<at::BFloat16>();
  for (int64_t t = 0; t < k.size(0); ++t) {
    std::memcpy(kc + slots[t] * row, k.data_ptr<at::BFloat16>() + t * k.stride(0), row * sizeof(at::BFloat16));
    std::memcpy(vc + slots[t] * row, v.data_ptr<at::BFloat16>() + t * v.stride(0), row * sizeof(at::BFloat16));
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

at::Tensor DecodeStack::apply(const PackedLinear& linear, const at::Tensor& x) {
  return quant_matmul(x, linear.codes, linear.scales, linear.out_features);
}

at::Tensor DecodeStack::run(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slot_mapping,
                            const at::Tensor& block_tables, const at::Tensor& context_lens) const {
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous(), "x must be contiguous bf16 [T, H]");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.numel() == x.size(0),
              "slot_mapping must be int64 [T]");
  const int64_t t = x.size(0), d = head_dim_, q_size = num_heads_ * d, kv_size = num_kv_heads_ * d;
  for (const Layer& layer : layers_) {
    const at::Tensor qkv = apply(layer.qkv, rms_norm(x, layer.input_norm, eps_));  // [T, (Hq + 2 Hkv) D]
    const at::Tensor q = qkv.narrow(1, 0, q_size).view({t, num_heads_, d});  // [T, Hq, D]
    const at::Tensor k = qkv.narrow(1, q_size, kv_size).view({t, num_kv_heads_, d});  // [T, Hkv, D]
    const at::Tensor v = qkv.narrow(1, q_size + kv_size, kv_size).view({t, num_kv_heads_, d});
    rotary_(q, cos, sin);
    rotary_(k, cos, sin);
    write_kv(k, v, layer.k_cache, layer.v_cache, slot_mapping);
    const at::Tensor attended = decode_attention(q.contiguous(), layer.k_cache, layer.v_cache, block_tables,
                                                 context_lens, scale_, layer.window);  // [T, Hq, D]
    x = residual_add(x, apply(layer.o, attended.view({t, q_size})));  // [T, H]
    const at::Tensor up = apply(layer.gate_up, rms_norm(x, layer.post_norm, eps_));  // [T, 2I]
    x = residual_add(x, apply(layer.down, silu_and_mul(up)));  // [T, H]
  }
  return x;
}
