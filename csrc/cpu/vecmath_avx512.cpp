// vecmath_avx512.cpp: vecmath.h's rows for AVX-512F (16 lanes), built with -mavx512f etc. (AVX2 bodies in an
// emulated AVX-512 build, see CMakeLists.txt).
#include "cpu/vecmath_simd.h"

namespace fastconv::cpu {
VecMath vecmath_avx512() { return vecmath_simd(); }
}  // namespace fastconv::cpu
