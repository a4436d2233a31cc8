// vecmath.h: float32 rows of exp-based math (sigmoid, tanh, softmax), compiled once per ISA (vecmath_simd.h in
// vecmath.cpp, vecmath_avx2.cpp, vecmath_avx512.cpp) and dispatched per call on the ISA in use (cpu/isa.h:
// CPUID, FASTCONV_ISA or set_cpu_isa), so the ISA tests cover each variant. The recurrent cells (rnn.cpp)
// and the softmax over time (time_loss.cpp) spend their elementwise time here. Accuracy (tests/test_vecmath.py
// measures it against float64 on every ISA): sigmoid and the softmax's exps as fast_exp.h's exp_approx (within
// 2 ulp of libm); tanh within 4 ulp (see vecmath_simd.h). float64 keeps libm (fast_exp.h).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

struct VecMath {
  void (*sigmoid)(const float* x, float* y, std::int64_t n);  // y = 1 / (1 + e^-x); x == y allowed
  void (*tanh)(const float* x, float* y, std::int64_t n);     // y = tanh(x); x == y allowed
  // y = softmax(x) over n values (y != x); returns log(sum e^(x - max)) + max in double, the row's
  // log-sum-exp (the exps summed in double; -inf for n = 0)
  double (*softmax)(const float* x, float* y, std::int64_t n);
};

const VecMath& vecmath();  // the variant of the ISA in use
#if FASTCONV_HAVE_X86_UKR
VecMath vecmath_avx2();
VecMath vecmath_avx512();
#endif

}  // namespace fastconv::cpu
