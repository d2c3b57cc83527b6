// bfloat16 for the kernels' cores, in plain C++ (no ATen), so the cores build for any target: ARM64
// with a cross compiler included (`tests/csrc/kernels_check.cpp`). The same bits and roundings as
// c10::BFloat16 (`bf16_bits` is its round_to_nearest_even), so the ATen files hand tensors' bf16 data
// to the cores as `kern::bf16` pointers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kern {

// The bf16 nearest an fp32 value, ties to even; a NaN becomes 0x7FC0 (c10::BFloat16's rounding).
inline uint16_t bf16_bits(float f) {
  if (std::isnan(f)) return 0x7FC0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + ((u >> 16) & 1) + 0x7FFF) >> 16);
}

// A bf16 value: c10::BFloat16's layout (may_alias: the cores read tensors that ATen wrote as
// c10::BFloat16), converting to and from float as it does.
struct __attribute__((may_alias)) bf16 {
  uint16_t x;

  bf16() = default;
  explicit bf16(float f) : x(bf16_bits(f)) {}
  operator float() const {
    const uint32_t u = static_cast<uint32_t>(x) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};
static_assert(sizeof(bf16) == 2, "bf16 must have c10::BFloat16's layout");

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return static_cast<float>(x); }

template <typename T>
inline T from_float(float x) { return static_cast<T>(x); }

// An fp32 value rounded to the storage type and back, as an eager op producing T rounds it.
template <typename T>
inline float round_to(float x) { return to_float(from_float<T>(x)); }

}  // namespace kern
