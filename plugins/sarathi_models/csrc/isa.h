// The ISA level this translation unit is compiled for, as one macro every kernel tests: the levels of
// `cpu_isa.py` (each built with its own -march flags, never -march=native).
//   SARATHI_AVX512  x86-64-v4 + AVX-512 VNNI + BF16: 512-bit paths, vdpbf16ps, vpdpbusd
//   SARATHI_AVX2    x86-64-v3 (AVX2, FMA, F16C): 256-bit paths, vpmaddubsw + vpmaddwd
//   SARATHI_NEON    ARM64 (NEON is in every ARMv8-A core; sdot where the build has dotprod)
//   none            the portable scalar code, which computes the same arithmetic
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && \
    defined(__AVX512BF16__)
#define SARATHI_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define SARATHI_AVX2 1
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define SARATHI_NEON 1
#endif

#if defined(SARATHI_AVX512) || defined(SARATHI_AVX2)
#include <immintrin.h>
#endif
#if defined(SARATHI_NEON)
#include <arm_neon.h>
#endif

// The level's name, as `cpu_isa.py` calls it.
inline const char* isa_level_name() {
#if defined(SARATHI_AVX512)
  return "avx512";
#elif defined(SARATHI_AVX2)
  return "avx2";
#elif defined(SARATHI_NEON) && defined(__ARM_FEATURE_DOTPROD)
  return "neon-dotprod";
#elif defined(SARATHI_NEON)
  return "neon";
#else
  return "portable";
#endif
}
