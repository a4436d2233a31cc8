// half_convert.h: whole-row conversions between the 16-bit storage types (common/half.h) and float, under the
// run-time ISA choice (cpu/isa.h): AVX-512 (vcvtph2ps / vcvtps2ph for f16, 16-bit shifts with round-to-nearest-
// even for bf16), AVX2 + F16C (the same at 256 bits) or the portable scalar loop. Kernels call these on the
// rows, slivers and blocks they are working on (never as a pass of their own over a whole tensor); every path
// gives the same bits as the scalar conversions of half.h, NaN included (a quiet NaN).
#pragma once
#include <cstdint>

#include "common/half.h"
#include "common/policy.h"

namespace fastconv::cpu {

// dst[i] = (float)src[i], exact
void widen(const f16* src, float* dst, std::int64_t n);
void widen(const bf16* src, float* dst, std::int64_t n);
// dst[i] = src[i] rounded to nearest, ties to even (overflow to inf)
void narrow(const float* src, f16* dst, std::int64_t n);
void narrow(const float* src, bf16* dst, std::int64_t n);
// The compute policy's float64 rows (common/policy.h): widen gives the float each double is computed as (rounded
// to float32, or once to float16 / bfloat16), narrow the double stored for a float result (itself, or rounded to
// float16 / bfloat16). Plain loops the compiler vectorises for f64_as_f32; scalar for the 16-bit policies.
void widen(const f64_as_f32* src, float* dst, std::int64_t n);
void widen(const f64_as_f16* src, float* dst, std::int64_t n);
void widen(const f64_as_bf16* src, float* dst, std::int64_t n);
void narrow(const float* src, f64_as_f32* dst, std::int64_t n);
void narrow(const float* src, f64_as_f16* dst, std::int64_t n);
void narrow(const float* src, f64_as_bf16* dst, std::int64_t n);

// The same for float / double rows (a copy), so templated kernels can write load_row / store_row for any T.
template <typename T>
inline void load_row(const T* src, compute_t<T>* dst, std::int64_t n) {
  if constexpr (is_staged_v<T>) widen(src, dst, n);
  else for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
template <typename T>
inline void store_row(const compute_t<T>* src, T* dst, std::int64_t n) {
  if constexpr (is_staged_v<T>) narrow(src, dst, n);
  else for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// The per-ISA row converters (half_avx2.cpp, half_avx512.cpp); n any, tails converted by the scalar code.
struct HalfConv {
  void (*widen_f16)(const f16*, float*, std::int64_t);
  void (*narrow_f16)(const float*, f16*, std::int64_t);
  void (*widen_bf16)(const bf16*, float*, std::int64_t);
  void (*narrow_bf16)(const float*, bf16*, std::int64_t);
};
#if FASTCONV_HAVE_X86_UKR
HalfConv half_conv_avx2();
HalfConv half_conv_avx512();
#endif

}  // namespace fastconv::cpu
