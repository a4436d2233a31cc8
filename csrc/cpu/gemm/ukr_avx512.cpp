// ukr_avx512.cpp: AVX-512F micro-kernels, compiled with -mavx512f (per-file flags in CMakeLists.txt) and
// called only when CPUID reports AVX-512F/DQ. f32: 16 x 16 (16 zmm accumulators) or 12 x 32 (24), chosen per
// CPU (cpu/isa.h, avx512_tile), f64: 8 x 16. Each comes
// with the gather tile and the transpose of the stride-1 convolution. Block sizes: config.h.
#include "cpu/gemm/config.h"
#include "cpu/gemm/ukr_simd.h"

namespace fastconv::cpu {
using namespace gemm_config;

Ukr<float> ukr_avx512_f32() {
  return make_ukr<float, AVX512_MR_F32, AVX512_NR_F32, 16, AVX512_ROWS_MR_F32, AVX512_ROWS_NR_F32>(
      "ukr_avx512_16x16");
}
Ukr<float> ukr_avx512w_f32() {
  return make_ukr<float, AVX512W_MR_F32, AVX512W_NR_F32, 16, AVX512_ROWS_MR_F32, AVX512_ROWS_NR_F32,
                  AVX512W_ROWS_MR_F32, AVX512W_ROWS_NR_F32>("ukr_avx512_12x32");
}
Ukr<double> ukr_avx512_f64() {
  return make_ukr<double, AVX512_MR_F64, AVX512_NR_F64, 8, AVX512_ROWS_MR_F64, AVX512_ROWS_NR_F64>(
      "ukr_avx512_8x16");
}

}  // namespace fastconv::cpu
