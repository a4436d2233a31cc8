// ukr_avx2.cpp: AVX2+FMA micro-kernels, compiled with -mavx2 -mfma (per-file flags in CMakeLists.txt) and
// called only when CPUID reports AVX2 and FMA. f32: 6 x 16 (12 ymm accumulators), f64: 6 x 8. Each comes in
// two forms: on a packed B sliver, and on unpacked B rows at per-k offsets (fn_offs, stride-1 conv); plus
// the dot-product tile of the stride-1 weight gradient (dot_*).
#include "cpu/gemm/config.h"
#include "cpu/gemm/ukr_simd.h"

namespace fastconv::cpu {
using namespace gemm_config;

static void ukr_avx2_6x16(index_t kc, const float* a, const float* b, float* c, index_t ldc, float alpha,
                          float beta) {
  ukr_simd<float, AVX2_MR_F32, AVX2_NR_F32 / 8, 8>(kc, a, b, c, ldc, alpha, beta);
}
static void ukr_avx2_6x16_offs(index_t kc, const float* a, const float* b, const index_t* offs, float* c,
                               index_t ldc, float alpha, float beta) {
  ukr_simd<float, AVX2_MR_F32, AVX2_NR_F32 / 8, 8, true>(kc, a, b, c, ldc, alpha, beta, offs);
}
static void ukr_avx2_6x8(index_t kc, const double* a, const double* b, double* c, index_t ldc, double alpha,
                         double beta) {
  ukr_simd<double, AVX2_MR_F64, AVX2_NR_F64 / 4, 4>(kc, a, b, c, ldc, alpha, beta);
}
static void ukr_avx2_6x8_offs(index_t kc, const double* a, const double* b, const index_t* offs, double* c,
                              index_t ldc, double alpha, double beta) {
  ukr_simd<double, AVX2_MR_F64, AVX2_NR_F64 / 4, 4, true>(kc, a, b, c, ldc, alpha, beta, offs);
}

static void dot_avx2_f32(index_t K, index_t nimg, const float* a, index_t as, index_t lda,
                         const float* b, index_t bs, const index_t* boffs, float* c) {
  dot_tile<float, AVX2_DOT_MF, AVX2_DOT_MT, 8>(K, nimg, a, as, lda, b, bs, boffs, c);
}

Ukr<float> ukr_avx2_f32() {
  return {AVX2_MR_F32, AVX2_NR_F32, &ukr_avx2_6x16, "ukr_avx2_6x16", &ukr_avx2_6x16_offs,
          AVX2_DOT_MF, AVX2_DOT_MT, 8, &dot_avx2_f32};
}
static void dot_avx2_f64(index_t K, index_t nimg, const double* a, index_t as, index_t lda,
                         const double* b, index_t bs, const index_t* boffs, double* c) {
  dot_tile<double, AVX2_DOT_MF, AVX2_DOT_MT, 4>(K, nimg, a, as, lda, b, bs, boffs, c);
}

Ukr<double> ukr_avx2_f64() {
  return {AVX2_MR_F64, AVX2_NR_F64, &ukr_avx2_6x8, "ukr_avx2_6x8", &ukr_avx2_6x8_offs,
          AVX2_DOT_MF, AVX2_DOT_MT, 4, &dot_avx2_f64};
}

}  // namespace fastconv::cpu
