// vecmath_simd.h: the loops of vecmath.h, written once and compiled per ISA by vecmath.cpp (baseline x86-64),
// vecmath_avx2.cpp and vecmath_avx512.cpp (their own -m flags; -fno-trapping-math for all, so the selects
// of the branch-free exp and tanh vectorise). Internal linkage, as gemm/ukr_simd.h: each file's copy must
// keep its own instructions.
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/fast_exp.h"
#include "cpu/vecmath.h"

namespace fastconv::cpu {
namespace {

// tanh of one float, branch-free. |x| < 0.4: the odd Taylor series to x^13 (the first term left out,
// 929569 x^15 / 638512875, is below 4e-9 |x| there); otherwise (1 - e) / (1 + e) with e = e^(-2|x|) <= 0.45,
// so 1 - e >= 0.55 and exp_approx's 2 ulp stay about 2 ulp (no cancellation); both on |x|, the sign
// copied from x. Measured on a dense grid (tests/test_vecmath.py): at most 2.3 ulp.
// tanh(+-inf) = +-1 (exp_approx clamps), NaN stays NaN.
#pragma omp declare simd
inline float tanh_approx(float x) {
  const float a = std::fabs(x);
  const float z = x * x;
  float p = 21844.0f / 6081075.0f;
  p = p * z - 1382.0f / 155925.0f;
  p = p * z + 62.0f / 2835.0f;
  p = p * z - 17.0f / 315.0f;
  p = p * z + 2.0f / 15.0f;
  p = p * z - 1.0f / 3.0f;
  const float small = a + a * (z * p);
  const float e = exp_approx(-2.0f * a);
  const float big = (1.0f - e) / (1.0f + e);
  return std::copysign(a < 0.4f ? small : big, x);  // -0.0 stays -0.0
}

void vm_sigmoid(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t j = 0; j < n; ++j) y[j] = 1.0f / (1.0f + exp_approx(-x[j]));
}

void vm_tanh(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t j = 0; j < n; ++j) y[j] = tanh_approx(x[j]);
}

// Three passes over a row that stays in L1/L2: the max, the exps (stored) with their sum in double, the
// division. Every reduction has a fixed order for a given variant (one row is one thread's), so results do
// not depend on the thread count. The max ignores NaN, as the sequential max did; a NaN anywhere makes its
// exp, the sum and so every probability NaN.
double vm_softmax(const float* x, float* y, std::int64_t n) {
  if (n <= 0) return -HUGE_VAL;  // the log of an empty sum
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (std::int64_t k = 1; k < n; ++k) mx = x[k] > mx ? x[k] : mx;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t k = 0; k < n; ++k) {
    const float e = exp_approx(x[k] - mx);
    y[k] = e;
    s += static_cast<double>(e);
  }
  const float st = static_cast<float>(s);
#pragma omp simd
  for (std::int64_t k = 0; k < n; ++k) y[k] = y[k] / st;
  return std::log(s) + static_cast<double>(mx);
}

inline VecMath vecmath_simd() { return {vm_sigmoid, vm_tanh, vm_softmax}; }

}  // namespace
}  // namespace fastconv::cpu
