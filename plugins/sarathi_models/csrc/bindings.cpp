// The Python module of the CPU kernels: every function and class of `ops.h`, bound with pybind11.
// The one file that includes torch/extension.h (see ops.h). Builds of several ISA levels may live in
// one process (the tests load each): the class is module-local and every symbol but the module's
// entry point hidden (-fvisibility=hidden), so no build binds another's.

#include "ops.h"

#include <pybind11/stl.h>
#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<DecodeStack>(m, "DecodeStack", pybind11::module_local())
      .def(pybind11::init<const std::vector<std::vector<at::Tensor>>&, const std::vector<int64_t>&, int64_t,
                          int64_t, int64_t, int64_t, int64_t, double, double>())
      .def("run", &DecodeStack::run, "every layer for a decode step: x [T, H] -> [T, H]");
  m.def("argmax_rows", &argmax_rows, "each row's argmax of float32 logits [S, V], as torch.argmax(dim=-1)");
  m.def("mask_disallowed_", &mask_disallowed_,
        "in place, -inf for the tokens of logits rows[m] that grammar bitmask words[m] [W] do not allow");
  m.def("quant_matmul", &quant_matmul, "x [M, K] @ w.T for a tiled 4- or 8-bit weight w [N, K] (quant_matmul.cpp)",
        pybind11::arg("x"), pybind11::arg("codes"), pybind11::arg("scales"), pybind11::arg("n"),
        pybind11::arg("float_out") = false);
  m.def("dequantize_transposed", &dequantize_transposed,
        "a tiled weight [N, K] dequantized to bf16 into wt [K, N] (dequant_core.h)");
  m.def("dequantize_rows", &dequantize_rows, "rows ids of a tiled weight [N, K] dequantized to bf16 -> [R, K]");
  m.def("quant_gemm", &quant_gemm, "x [M, K] bf16 @ w.T for a tiled weight and many rows (quant_gemm_core.h)");
  m.def("quant_gemm_supported", &quant_gemm_supported, "whether this build has quant_gemm (avx512, avx2, neon)");
  m.def("isa_level", &isa_level, "the ISA level this build was compiled for (avx512, avx2, portable)");
  m.def("rms_norm", &rms_norm, "RMSNorm of x [T, H] by weight [H]");
  m.def("silu_and_mul", &silu_and_mul, "silu(gate) * up of a fused [T, 2I] projection");
  m.def("rotary_", &rotary_, "rotate x [T, H, D] in place by cos/sin [T, D]");
  m.def("decode_attention", &decode_attention, "decode attention over the paged KV cache");
  m.def("prefill_attention", &prefill_attention, "a prefill chunk's causal attention over the paged KV cache");
  m.def("prefill_attention_supported", &prefill_attention_supported, "whether this build has prefill_attention");
}
