// policy.h: the storage types of the compute policy (fastconv.set_compute_dtype): float64 in memory, computed in
// a narrower type. f64_as_f32 loads each double rounded to float32; f64_as_f16 / f64_as_bf16 load it rounded
// (once, correctly: round to nearest even from the double itself) to float16 / bfloat16 and widened to float32.
// Kernels compute in float32 (compute_t), exactly as for f16 / bf16, and store the float32 result as that type
// would hold it (f64_as_f32: the float itself; f64_as_f16 / f64_as_bf16: rounded to the 16-bit type), widened
// back to double. So a policy kernel gives the bits of the float32 / float16 / bfloat16 kernel run on the
// rounded inputs, in float64 arrays. Row conversions: cpu/half_convert.h (widen / narrow).
#pragma once

#include "common/half.h"

namespace fastconv {

// Layout-compatible with a NumPy float64 element: one double, nothing else.
struct f64_as_f32 {
  double v;
};
struct f64_as_f16 {
  double v;
};
struct f64_as_bf16 {
  double v;
};
static_assert(sizeof(f64_as_f32) == 8 && sizeof(f64_as_f16) == 8 && sizeof(f64_as_bf16) == 8,
              "double storage types");

template <>
struct is_staged<f64_as_f32> : std::true_type {};
template <>
struct is_staged<f64_as_f16> : std::true_type {};
template <>
struct is_staged<f64_as_bf16> : std::true_type {};

// The float32 value a kernel computes with, per policy type.
inline float to_compute(f64_as_f32 v) { return static_cast<float>(v.v); }
inline float to_compute(f64_as_f16 v) { return half_to_float(float_to_half(double_to_float_odd(v.v))); }
inline float to_compute(f64_as_bf16 v) { return bf16_to_float(float_to_bf16(double_to_float_odd(v.v))); }

// The double a kernel stores for its float32 result.
template <>
inline f64_as_f32 from_compute<f64_as_f32>(float v) {
  return {static_cast<double>(v)};
}
template <>
inline f64_as_f16 from_compute<f64_as_f16>(float v) {
  return {static_cast<double>(half_to_float(float_to_half(v)))};
}
template <>
inline f64_as_bf16 from_compute<f64_as_bf16>(float v) {
  return {static_cast<double>(bf16_to_float(float_to_bf16(v)))};
}

}  // namespace fastconv
