// fast_exp.h: exp, sigmoid and tanh over arrays (libm's scalar expf costs 7.5 ns an element here; the LSTM's
// gates and the time softmax take millions a step). float: exp by range reduction x = n ln2 + r (|r| <= ln2/2,
// ln2 split in two parts so n*ln2 is exact), e^r by its Taylor series to degree 7 (truncation r^8/8! < 6e-9,
// under float's 6e-8), 2^n put in the exponent bits: within 2 ulp of libm on [-87, 88], clamped outside (so
// sigmoid saturates at +-inf), NaN kept; sigmoid = 1 / (1 + e^-x) keeps that relative accuracy (no
// cancellation). The float rows of sigmoid and tanh are vecmath.h's, compiled per ISA (16 lanes on AVX-512);
// its tanh is a polynomial near 0 and (1 - e) / (1 + e) with e = e^(-2|x|) elsewhere (1 - 2 / (1 + e^{2x})
// alone has an absolute error ~2e-7 near 0, a large relative one, which once moved the float32 Rnnlm test's
// gradients past float32 rounding). double: libm, for float64's 1e-10 tolerances.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/vecmath.h"

namespace fastconv::cpu {

// Internal linkage on purpose (as gemm/ukr_simd.h): vecmath_avx2.cpp and vecmath_avx512.cpp compile this
// with their own -m flags, and a copy they emit out of line (any build that does not inline it, -O0) must
// never be the one the linker keeps for the baseline files.
namespace {
#pragma omp declare simd
inline float exp_approx(float x) {
  // NaN fails both comparisons and takes -87: its n below must be a defined int (a NaN cast to int32 and
  // shifted is undefined behaviour, UBSan's 'left shift of negative value'); the result is x, NaN, anyway
  const float xc = x > 88.0f ? 88.0f : (x >= -87.0f ? x : -87.0f);
  const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;   // round(x / ln2): 1.5 * 2^23 trick
  const float r = (xc - n * 0.693145751953125f) - n * 1.4286068203094173e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 127]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x != x ? x : p * scale;
}
}  // namespace

// y = 1 / (1 + exp(-x)) elementwise (x and y may be the same array); float: vecmath.h's row for the ISA in use.
template <typename T>
inline void sigmoid_to(const T* x, T* y, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) y[j] = T(1) / (T(1) + std::exp(-x[j]));
}
template <>
inline void sigmoid_to<float>(const float* x, float* y, std::int64_t n) {
  vecmath().sigmoid(x, y, n);
}

// y = tanh(x) elementwise (x and y may be the same array); float: vecmath.h's row (within 4 ulp).
template <typename T>
inline void tanh_to(const T* x, T* y, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) y[j] = std::tanh(x[j]);
}
template <>
inline void tanh_to<float>(const float* x, float* y, std::int64_t n) {
  vecmath().tanh(x, y, n);
}

}  // namespace fastconv::cpu
