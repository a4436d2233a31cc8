// macro_kernel.cpp: loops 2 and 1 around the micro-kernel (BLIS): jr over NR slivers of the packed B panel,
// ir over MR slivers of the packed A block, so one B sliver (kc x nr, L1-sized) is reused for every A
// sliver. Full tiles are written straight into C; edge tiles go through a small scratch tile and only the
// valid part is merged into C.
#include <algorithm>

#include "common/dtype.h"
#include "cpu/gemm/config.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

template <typename T>
void macro_kernel(const Ukr<T>& u, index_t mc, index_t nc, index_t kc, T alpha, const T* apack,
                  const T* bpack, T beta, T* C, index_t ldc) {
  const int mr = u.mr, nr = u.nr;
  alignas(64) T tile[gemm_config::MAX_MR * gemm_config::MAX_NR];
  // loop 2 around micro-kernel: jr += NR
  for (index_t jr = 0; jr < nc; jr += nr) {
    const index_t n = std::min<index_t>(nr, nc - jr);
    const T* b = bpack + jr * kc;  // sliver jr/nr of the panel
    // loop 1 around micro-kernel: ir += MR
    for (index_t ir = 0; ir < mc; ir += mr) {
      const index_t m = std::min<index_t>(mr, mc - ir);
      const T* a = apack + ir * kc;
      T* c = C + ir * ldc + jr;  // C tile (m x n) at row ir, column jr
      if (m == mr && n == nr) {
        u.fn(kc, a, b, c, ldc, alpha, beta);
      } else {
        u.fn(kc, a, b, tile, nr, T(1), T(0));
        for (index_t i = 0; i < m; ++i)
          for (index_t j = 0; j < n; ++j) {
            const T v = tile[i * nr + j];
            c[i * ldc + j] = beta == T(0) ? alpha * v : alpha * v + beta * c[i * ldc + j];
          }
      }
    }  // end loop 1
  }    // end loop 2
}

#define FC_MACRO_KERNEL_INSTANTIATE(T, S) \
  template void macro_kernel<T>(const Ukr<T>&, index_t, index_t, index_t, T, const T*, const T*, T, T*, index_t);
FC_FLOAT_TYPES(FC_MACRO_KERNEL_INSTANTIATE)
#undef FC_MACRO_KERNEL_INSTANTIATE

}  // namespace fastconv::cpu
