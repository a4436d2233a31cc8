// pack.cpp: copies a block of A (mc x kc) and a panel of B (kc x nc) into the micro-kernel's order:
// A as MR-row slivers (for each k, MR consecutive values), B as NR-column slivers (for each k, NR
// consecutive values). Edge slivers are zero-padded so the micro-kernel always sees full tiles (the padded
// rows/columns of C are discarded by the macro-kernel). Strided sources make transposes free.
#include <algorithm>
#include <cstring>

#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

// ------------------------------------------------------------------------------------------------------
// A: element (i, k) at A[i*rsa + k*csa]; dst is ceil(mc/mr) slivers of kc x mr
template <typename T>
void pack_a_mc_kc(index_t mc, index_t kc, const T* A, index_t rsa, index_t csa, int mr, T* dst) {
  for (index_t i0 = 0; i0 < mc; i0 += mr) {
    const index_t m = std::min<index_t>(mr, mc - i0);
    T* d = dst + i0 * kc;  // sliver i0/mr starts at (i0/mr) * kc * mr
    if (csa == 1) {
      // rows of A are contiguous along k: read row by row, write with stride mr
      for (index_t i = 0; i < m; ++i) {
        const T* a = A + (i0 + i) * rsa;
        for (index_t k = 0; k < kc; ++k) d[k * mr + i] = a[k];
      }
      for (index_t i = m; i < mr; ++i)
        for (index_t k = 0; k < kc; ++k) d[k * mr + i] = T(0);
    } else {
      // columns of A contiguous (A transposed, rsa == 1) or general stride: k outer, i inner
      for (index_t k = 0; k < kc; ++k) {
        const T* a = A + k * csa + i0 * rsa;
        T* dk = d + k * mr;
        for (index_t i = 0; i < m; ++i) dk[i] = a[i * rsa];
        for (index_t i = m; i < mr; ++i) dk[i] = T(0);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// B: element (k, j) at B[k*rsb + j*csb]; dst is ceil(nc/nr) slivers of kc x nr
template <typename T>
void pack_b_kc_nc(index_t kc, index_t nc, const T* B, index_t rsb, index_t csb, int nr, T* dst) {
  for (index_t j0 = 0; j0 < nc; j0 += nr) {
    const index_t n = std::min<index_t>(nr, nc - j0);
    T* d = dst + j0 * kc;
    if (csb == 1) {
      // rows of B contiguous: one short memcpy per k (the common, non-transposed case)
      for (index_t k = 0; k < kc; ++k) {
        const T* b = B + k * rsb + j0;
        T* dk = d + k * nr;
#pragma omp simd
        for (index_t j = 0; j < n; ++j) dk[j] = b[j];  // short: inline copy beats a memcpy call
        for (index_t j = n; j < nr; ++j) dk[j] = T(0);
      }
    } else {
      // B transposed (rsb == 1) or general stride: walk each column of B along k, in k tiles of KB so the
      // KB x nr destination lines stay in L1 (whole-kc columns thrash L1: measured 2x slower).
      constexpr index_t KB = 16;
      for (index_t k0 = 0; k0 < kc; k0 += KB) {
        const index_t kb = std::min<index_t>(KB, kc - k0);
        T* dk = d + k0 * nr;
        for (index_t j = 0; j < n; ++j) {
          const T* b = B + (j0 + j) * csb + k0 * rsb;
          for (index_t k = 0; k < kb; ++k) dk[k * nr + j] = b[k * rsb];
        }
        for (index_t k = 0; k < kb; ++k)
          for (index_t j = n; j < nr; ++j) dk[k * nr + j] = T(0);
      }
    }
  }
}

template void pack_a_mc_kc<float>(index_t, index_t, const float*, index_t, index_t, int, float*);
template void pack_a_mc_kc<double>(index_t, index_t, const double*, index_t, index_t, int, double*);
template void pack_b_kc_nc<float>(index_t, index_t, const float*, index_t, index_t, int, float*);
template void pack_b_kc_nc<double>(index_t, index_t, const double*, index_t, index_t, int, double*);

}  // namespace fastconv::cpu
