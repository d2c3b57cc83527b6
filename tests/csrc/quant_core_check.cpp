// Checks the quantized matmul's SIMD path of whatever ISA this file is compiled for (AVX-512, AVX2,
// NEON with or without dotprod, or none) against its scalar reference, bit for bit, with no ATen: the
// kernel core (`plugins/sarathi_models/csrc/quant_core.h`) is plain C++, so it can be built for ARM64
// with a cross compiler and run under qemu-user. `tests/models/test_quant_core_isas.py` builds and runs
// it per level. Prints one line; exits 1 on any difference.

#include "quant_core.h"

#include <cstdio>
#include <random>
#include <vector>

namespace {

using Pass = void (*)(const uint8_t*, const uint16_t*, int64_t, const quant::QuantizedRows&, int64_t, int64_t, float*);

// The half closest below a positive float in [2^-14, 2^15) (exact enough for a test input).
uint16_t half_of(float x, bool negative) {
  int exponent;
  const float mantissa = std::frexp(x, &exponent);  // x = mantissa 2^exponent, mantissa in [0.5, 1)
  const uint16_t bits = static_cast<uint16_t>(((exponent + 14) << 10) | (static_cast<int>(mantissa * 2048) & 0x3FF));
  return negative ? static_cast<uint16_t>(bits | 0x8000) : bits;
}

const char* level() {
#if defined(SARATHI_AVX512)
  return "avx512";
#elif defined(SARATHI_AVX2)
  return "avx2";
#elif defined(__ARM_FEATURE_DOTPROD)
  return "neon+dotprod";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

template <int Format>
int check(std::mt19937& gen, int64_t k, int& checks) {
  constexpr Pass simd[] = {quant::tile_pass<Format, 1>, quant::tile_pass<Format, 2>, quant::tile_pass<Format, 3>,
                           quant::tile_pass<Format, 4>, quant::tile_pass<Format, 5>, quant::tile_pass<Format, 6>,
                           quant::tile_pass<Format, 7>, quant::tile_pass<Format, 8>};
  constexpr Pass scalar[] = {quant::tile_pass_scalar<Format, 1>, quant::tile_pass_scalar<Format, 2>,
                             quant::tile_pass_scalar<Format, 3>, quant::tile_pass_scalar<Format, 4>,
                             quant::tile_pass_scalar<Format, 5>, quant::tile_pass_scalar<Format, 6>,
                             quant::tile_pass_scalar<Format, 7>, quant::tile_pass_scalar<Format, 8>};
  const int64_t groups = k / quant::kGroup;
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  std::vector<uint8_t> codes(groups * quant::kGroupBytes<Format>);
  for (auto& c : codes) c = static_cast<uint8_t>(byte(gen));
  const int64_t per_group = quant::kGroupScales<Format>;
  std::vector<uint16_t> scales(groups * per_group);
  for (int64_t i = 0; i < groups * per_group; ++i)
    scales[i] = half_of(0.001f + 0.05f * unit(gen), i % 32 >= 16);  // d > 0 then m < 0 (per half group too)
  int failures = 0;
  for (int rows = 1; rows <= quant::kRowsPerPass; ++rows) {
    std::vector<float> x(rows * k);
    for (auto& v : x) v = normal(gen) * std::exp(2.f * normal(gen));  // outliers, as hidden states have
    quant::QuantizedRows act{std::vector<int8_t>(rows * k), std::vector<float>(rows * groups),
                             std::vector<float>(rows * groups), std::vector<int32_t>(rows * groups),
                             std::vector<int32_t>(rows * groups)};
    quant::quantize_range(x.data(), k, act, 0, rows);
    float got[quant::kRowsPerPass * quant::kTile], want[quant::kRowsPerPass * quant::kTile];
    simd[rows - 1](codes.data(), scales.data(), groups, act, 0, k, got);
    scalar[rows - 1](codes.data(), scales.data(), groups, act, 0, k, want);
    ++checks;
    if (std::memcmp(got, want, rows * quant::kTile * sizeof(float)) != 0) {
      ++failures;
      std::printf("%s: format %d, k %lld, %d rows: differs (%g against %g)\n", level(), Format, static_cast<long long>(k),
                  rows, got[0], want[0]);
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 gen(2026);
  int failures = 0, checks = 0;
  for (const int64_t k : {32, 96, 576, 1536}) {
    failures += check<quant::kFour>(gen, k, checks);
    failures += check<quant::kFive>(gen, k, checks);
    failures += check<quant::kEight>(gen, k, checks);
    failures += check<quant::kEightHalves>(gen, k, checks);
    failures += check<quant::kSixHalves>(gen, k, checks);
  }
  std::printf("%s: %d checks, %d differ from the scalar path\n", level(), checks, failures);
  return failures == 0 ? 0 : 1;
}
