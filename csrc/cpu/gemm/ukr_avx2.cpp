// ukr_avx2.cpp: AVX2+FMA micro-kernels, compiled with -mavx2 -mfma (per-file flags in CMakeLists.txt) and
// called only when CPUID reports AVX2 and FMA. f32: 6 x 16 (12 ymm accumulators), f64: 6 x 8. Each comes with
// the gather tile and the transpose of the stride-1 convolution. Block sizes: config.h.
#include "cpu/gemm/config.h"
#include "cpu/gemm/ukr_simd.h"

namespace fastconv::cpu {
using namespace gemm_config;

Ukr<float> ukr_avx2_f32() {
  return make_ukr<float, AVX2_MR_F32, AVX2_NR_F32, 8, AVX2_ROWS_MR_F32,
                  AVX2_ROWS_NR_F32>("ukr_avx2_6x16");
}
Ukr<double> ukr_avx2_f64() {
  return make_ukr<double, AVX2_MR_F64, AVX2_NR_F64, 4, AVX2_ROWS_MR_F64,
                  AVX2_ROWS_NR_F64>("ukr_avx2_6x8");
}

}  // namespace fastconv::cpu
