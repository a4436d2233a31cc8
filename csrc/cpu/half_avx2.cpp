// half_avx2.cpp: the row conversions of half_convert.h for AVX2 + F16C (8 lanes), built with -mavx2 -mf16c.
#include "cpu/half_simd.h"

namespace fastconv::cpu {
HalfConv half_conv_avx2() { return half_conv_simd(); }
}  // namespace fastconv::cpu
