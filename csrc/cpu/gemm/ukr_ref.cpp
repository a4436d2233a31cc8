// ukr_ref.cpp: the portable micro-kernel (plain loops, baseline ISA): the obviously-correct variant every
// SIMD kernel is tested against, and the fallback on CPUs without AVX2. 4 x 8 tile.
#include "cpu/gemm/config.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {
using namespace gemm_config;

// OFFS = false: row k of B is the packed b + k*NR; OFFS = true: it starts at b + offs[k] (shifted view).
template <typename T, bool OFFS>
static void ukr_ref_4x8_rows(index_t kc, const T* a, const T* b, const index_t* offs, T* c, index_t ldc, T alpha,
                             T beta) {
  T acc[REF_MR][REF_NR] = {};
  for (index_t k = 0; k < kc; ++k) {
    const T* bk = b + (OFFS ? offs[k] : k * REF_NR);
    for (int i = 0; i < REF_MR; ++i)
      for (int j = 0; j < REF_NR; ++j) acc[i][j] += a[k * REF_MR + i] * bk[j];
  }
  for (int i = 0; i < REF_MR; ++i)
    for (int j = 0; j < REF_NR; ++j)
      c[i * ldc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

template <typename T>
static void ukr_ref_4x8(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta) {
  ukr_ref_4x8_rows<T, false>(kc, a, b, nullptr, c, ldc, alpha, beta);
}

template <typename T>
static void ukr_ref_4x8_offs(index_t kc, const T* a, const T* b, const index_t* offs, T* c, index_t ldc, T alpha,
                             T beta) {
  ukr_ref_4x8_rows<T, true>(kc, a, b, offs, c, ldc, alpha, beta);
}

template <typename T>
static void dot_ref_2x2(index_t K, index_t nimg, const T* a, index_t as, index_t lda, const T* b, index_t bs,
                        const index_t* boffs, T* c) {
  T acc[REF_DOT_MF][REF_DOT_MT] = {};
  for (index_t img = 0; img < nimg; ++img)
    for (int i = 0; i < REF_DOT_MF; ++i)
      for (int j = 0; j < REF_DOT_MT; ++j) {
        const T* ai = a + img * as + i * lda;
        const T* bj = b + img * bs + boffs[j];
        for (index_t k = 0; k < K; ++k) acc[i][j] += ai[k] * bj[k];
      }
  for (int i = 0; i < REF_DOT_MF; ++i)
    for (int j = 0; j < REF_DOT_MT; ++j) c[i * REF_DOT_MT + j] = acc[i][j];
}

Ukr<float> ukr_ref_f32() {
  return {REF_MR, REF_NR, &ukr_ref_4x8<float>, "ukr_ref_4x8", &ukr_ref_4x8_offs<float>, REF_DOT_MF,
          REF_DOT_MT, 1, &dot_ref_2x2<float>};
}
Ukr<double> ukr_ref_f64() {
  return {REF_MR, REF_NR, &ukr_ref_4x8<double>, "ukr_ref_4x8", &ukr_ref_4x8_offs<double>, REF_DOT_MF,
          REF_DOT_MT, 1, &dot_ref_2x2<double>};
}

}  // namespace fastconv::cpu
