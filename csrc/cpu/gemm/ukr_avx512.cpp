// ukr_avx512.cpp: AVX-512F micro-kernels, compiled with -mavx512f (per-file flags in CMakeLists.txt) and
// called only when CPUID reports AVX-512F/DQ. f32: 16 x 16 (16 zmm accumulators), f64: 8 x 16. Each comes
// in two forms: on a packed B sliver, and on unpacked B rows at per-k offsets (fn_offs, stride-1 conv);
// plus the dot-product tile of the stride-1 weight gradient (dot_*).
#include "cpu/gemm/config.h"
#include "cpu/gemm/ukr_simd.h"

namespace fastconv::cpu {
using namespace gemm_config;

static void ukr_avx512_16x16(index_t kc, const float* a, const float* b, float* c, index_t ldc, float alpha,
                            float beta) {
  ukr_simd<float, AVX512_MR_F32, AVX512_NR_F32 / 16, 16>(kc, a, b, c, ldc, alpha, beta);
}
static void ukr_avx512_16x16_offs(index_t kc, const float* a, const float* b, const index_t* offs, float* c,
                                 index_t ldc, float alpha, float beta) {
  ukr_simd<float, AVX512_MR_F32, AVX512_NR_F32 / 16, 16, true>(kc, a, b, c, ldc, alpha, beta, offs);
}
static void ukr_avx512_8x16(index_t kc, const double* a, const double* b, double* c, index_t ldc,
                            double alpha, double beta) {
  ukr_simd<double, AVX512_MR_F64, AVX512_NR_F64 / 8, 8>(kc, a, b, c, ldc, alpha, beta);
}
static void ukr_avx512_8x16_offs(index_t kc, const double* a, const double* b, const index_t* offs, double* c,
                                 index_t ldc, double alpha, double beta) {
  ukr_simd<double, AVX512_MR_F64, AVX512_NR_F64 / 8, 8, true>(kc, a, b, c, ldc, alpha, beta, offs);
}

static void dot_avx512_f32(index_t K, index_t nimg, const float* a, index_t as, index_t lda,
                           const float* b, index_t bs, const index_t* boffs, float* c) {
  dot_tile<float, AVX512_DOT_MF, AVX512_DOT_MT, 16>(K, nimg, a, as, lda, b, bs, boffs, c);
}

Ukr<float> ukr_avx512_f32() {
  return {AVX512_MR_F32, AVX512_NR_F32, &ukr_avx512_16x16, "ukr_avx512_16x16", &ukr_avx512_16x16_offs,
          AVX512_DOT_MF, AVX512_DOT_MT, 16, &dot_avx512_f32};
}
static void dot_avx512_f64(index_t K, index_t nimg, const double* a, index_t as, index_t lda,
                           const double* b, index_t bs, const index_t* boffs, double* c) {
  dot_tile<double, AVX512_DOT_MF, AVX512_DOT_MT, 8>(K, nimg, a, as, lda, b, bs, boffs, c);
}

Ukr<double> ukr_avx512_f64() {
  return {AVX512_MR_F64, AVX512_NR_F64, &ukr_avx512_8x16, "ukr_avx512_8x16", &ukr_avx512_8x16_offs,
          AVX512_DOT_MF, AVX512_DOT_MT, 8, &dot_avx512_f64};
}

}  // namespace fastconv::cpu
