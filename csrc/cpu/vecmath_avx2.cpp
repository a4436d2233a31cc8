// vecmath_avx2.cpp: vecmath.h's rows for AVX2 + FMA (8 lanes), built with -mavx2 -mfma (CMakeLists.txt).
#include "cpu/vecmath_simd.h"

namespace fastconv::cpu {
VecMath vecmath_avx2() { return vecmath_simd(); }
}  // namespace fastconv::cpu
