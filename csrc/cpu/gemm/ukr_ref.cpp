// ukr_ref.cpp: the portable micro-kernel (plain loops, baseline ISA): the obviously-correct variant every
// SIMD kernel is tested against, and the fallback on CPUs without AVX2. 4 x 8 tile.
#include "cpu/gemm/config.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {
using namespace gemm_config;

template <typename T>
static void ukr_ref_4x8(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta) {
  T acc[REF_MR][REF_NR] = {};
  for (index_t k = 0; k < kc; ++k)
    for (int i = 0; i < REF_MR; ++i)
      for (int j = 0; j < REF_NR; ++j) acc[i][j] += a[k * REF_MR + i] * b[k * REF_NR + j];
  for (int i = 0; i < REF_MR; ++i)
    for (int j = 0; j < REF_NR; ++j)
      c[i * ldc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

template <typename T>
static void rows_ref_4x8(index_t kc, index_t nimg, const T* a, index_t as, const index_t* aoffs,
                         const index_t* kidx, const T* b, index_t bs, T* c, index_t ldc, bool accumulate) {
  T acc[REF_ROWS_MR][REF_ROWS_NR] = {};
  for (index_t img = 0; img < nimg; ++img)
    for (index_t k = 0; k < kc; ++k)
      for (int i = 0; i < REF_ROWS_MR; ++i)
        for (int j = 0; j < REF_ROWS_NR; ++j)
          acc[i][j] += a[img * as + aoffs[i] + kidx[k]] * b[img * bs + k * REF_ROWS_NR + j];
  for (int i = 0; i < REF_ROWS_MR; ++i)
    for (int j = 0; j < REF_ROWS_NR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

Ukr<float> ukr_ref_f32() {
  return {REF_MR,      REF_NR,      &ukr_ref_4x8<float>, "ukr_ref_4x8",
          REF_ROWS_MR, REF_ROWS_NR, &rows_ref_4x8<float>, &transpose_bias_ref<float>,
          0,           0,           nullptr};
}
Ukr<double> ukr_ref_f64() {
  return {REF_MR,      REF_NR,      &ukr_ref_4x8<double>, "ukr_ref_4x8",
          REF_ROWS_MR, REF_ROWS_NR, &rows_ref_4x8<double>, &transpose_bias_ref<double>,
          0,           0,           nullptr};
}

}  // namespace fastconv::cpu
