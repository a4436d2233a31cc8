// half_avx512.cpp: the row conversions of half_convert.h for AVX-512F (16 lanes), built with -mavx512f etc.
// (8-lane AVX2 + F16C bodies in an emulated AVX-512 build, see CMakeLists.txt).
#include "cpu/half_simd.h"

namespace fastconv::cpu {
HalfConv half_conv_avx512() { return half_conv_simd(); }
}  // namespace fastconv::cpu
