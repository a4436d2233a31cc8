// pack.cpp: copies a block of A (mc x kc) and a panel of B (kc x nc) into the micro-kernel's order:
// A as MR-row slivers (for each k, MR consecutive values), B as NR-column slivers (for each k, NR
// consecutive values). Edge slivers are zero-padded so the micro-kernel always sees full tiles (the padded
// rows/columns of C are discarded by the macro-kernel). Strided sources make transposes free.
#include <algorithm>
#include <cstring>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/dtype.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

namespace {

// Sources are read in the order they lie in memory (whole rows one after the other, or the W lines of one
// sliver together), which is what the hardware prefetchers follow from DRAM; the earlier order (a 16-value
// column strip of every row per sliver: one line per 4 KB row) packed a 512 x 1024 float panel of B in
// 1.18 ms with cold caches, now 0.54-0.75 ms; warm 0.24 -> 0.11 ms (single thread, this Zen 3 machine).
// W (the sliver width: MR or NR) is a template parameter so each copy of W values is a fixed-size move.

// src[0..n) is element (x, k) for x < n of a matrix packed as slivers of W: x goes to sliver x / W at
// dst + (x / W)*kc*W + k*W + x % W; the last sliver's missing values are zeros.
template <typename T, int W>
void scatter_line(const T* src, index_t n, index_t kc, index_t k, T* dst) {
  const index_t full = n / W * W;
  T* d = dst + k * W;
  for (index_t x0 = 0; x0 < full; x0 += W, d += kc * W) std::memcpy(d, src + x0, W * sizeof(T));
  if (full < n) {
    for (index_t x = full; x < n; ++x) d[x - full] = src[x];
    for (index_t x = n - full; x < W; ++x) d[x] = T(0);
  }
}

// One sliver from W lines contiguous along k: src + x*ld for x < m <= W (zeros for x >= m), in k tiles of KB
// so the KB x W destination block stays in L1 while the W source streams advance together.
template <typename T, int W>
void gather_sliver(const T* src, index_t ld, index_t m, index_t kc, T* d) {
  constexpr index_t KB = 16;
  for (index_t k0 = 0; k0 < kc; k0 += KB) {
    const index_t kb = std::min(KB, kc - k0);
    T* dk = d + k0 * W;
    if (m == W) {
      index_t kv = 0;
#if defined(__SSE2__)
      // float: 4 x 4 blocks transposed in SSE registers (x86-64's baseline), 4 lines x 4 k per block instead
      // of 16 scalar moves. Measured (one Emerald Rapids core, SGEMM 700 x 2048 x 512 with B transposed, the
      // affine layer's dx, 10 alternating runs): 144 -> 161 GFLOP/s, 0.92x -> 1.00x NumPy's matmul.
      if constexpr (std::is_same_v<T, float> && W % 4 == 0) {
        kv = kb / 4 * 4;
        for (int x = 0; x < W; x += 4) {
          const float* s0 = src + x * ld + k0;
          for (index_t k = 0; k < kv; k += 4) {
            __m128 r0 = _mm_loadu_ps(s0 + k), r1 = _mm_loadu_ps(s0 + ld + k);
            __m128 r2 = _mm_loadu_ps(s0 + 2 * ld + k), r3 = _mm_loadu_ps(s0 + 3 * ld + k);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);  // r_i = line x..x+3 at k + i
            _mm_storeu_ps(dk + k * W + x, r0);
            _mm_storeu_ps(dk + (k + 1) * W + x, r1);
            _mm_storeu_ps(dk + (k + 2) * W + x, r2);
            _mm_storeu_ps(dk + (k + 3) * W + x, r3);
          }
        }
      }
#endif
      for (int x = 0; x < W; ++x) {
        const T* sx = src + x * ld + k0;
        for (index_t k = kv; k < kb; ++k) dk[k * W + x] = sx[k];
      }
    } else {
      for (int x = 0; x < W; ++x)
        for (index_t k = 0; k < kb; ++k) dk[k * W + x] = x < m ? src[x * ld + k0 + k] : T(0);
    }
  }
}

// Any strides, any width: element by element (general strided views, and widths not instantiated below).
template <typename T>
void pack_slivers_strided(int w, index_t n, index_t kc, const T* S, index_t rs, index_t cs, T* dst) {
  for (index_t x0 = 0; x0 < n; x0 += w)
    for (index_t k = 0; k < kc; ++k)
      for (int x = 0; x < w; ++x) dst[x0 * kc + k * w + x] = x0 + x < n ? S[(x0 + x) * rs + k * cs] : T(0);
}

// Both orders for a sliver width w: when the wide dimension (the one the slivers cut) is contiguous in
// memory, line by line along k (scatter_line); when k is contiguous, k tiles of KB over all lines.
template <typename T, int W>
void pack_slivers(index_t n, index_t kc, const T* S, index_t rs, index_t cs, T* dst) {
  // element (x, k) of the source at S[x*rs + k*cs]
  if (rs == 1) {
    for (index_t k = 0; k < kc; ++k) scatter_line<T, W>(S + k * cs, n, kc, k, dst);
  } else if (cs == 1) {
    for (index_t x0 = 0; x0 < n; x0 += W)
      gather_sliver<T, W>(S + x0 * rs, rs, std::min<index_t>(W, n - x0), kc, dst + x0 * kc);
  } else {
    pack_slivers_strided<T>(W, n, kc, S, rs, cs, dst);
  }
}

template <typename T>
void pack_slivers_any(int w, index_t n, index_t kc, const T* S, index_t rs, index_t cs, T* dst) {
  switch (w) {
    case 4: return pack_slivers<T, 4>(n, kc, S, rs, cs, dst);
    case 6: return pack_slivers<T, 6>(n, kc, S, rs, cs, dst);
    case 8: return pack_slivers<T, 8>(n, kc, S, rs, cs, dst);
    case 12: return pack_slivers<T, 12>(n, kc, S, rs, cs, dst);
    case 16: return pack_slivers<T, 16>(n, kc, S, rs, cs, dst);
    case 32: return pack_slivers<T, 32>(n, kc, S, rs, cs, dst);
    default: return pack_slivers_strided<T>(w, n, kc, S, rs, cs, dst);  // none in config.h today
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// A: element (i, k) at A[i*rsa + k*csa]; dst is ceil(mc/mr) slivers of kc x mr
template <typename T>
void pack_a_mc_kc(index_t mc, index_t kc, const T* A, index_t rsa, index_t csa, int mr, T* dst) {
  pack_slivers_any<T>(mr, mc, kc, A, rsa, csa, dst);
}

// ------------------------------------------------------------------------------------------------------
// B: element (k, j) at B[k*rsb + j*csb]; dst is ceil(nc/nr) slivers of kc x nr
template <typename T>
void pack_b_kc_nc(index_t kc, index_t nc, const T* B, index_t rsb, index_t csb, int nr, T* dst) {
  pack_slivers_any<T>(nr, nc, kc, B, csb, rsb, dst);
}

#define FC_PACK_INSTANTIATE(T, S)                                                          \
  template void pack_a_mc_kc<T>(index_t, index_t, const T*, index_t, index_t, int, T*);    \
  template void pack_b_kc_nc<T>(index_t, index_t, const T*, index_t, index_t, int, T*);
FC_FLOAT_TYPES(FC_PACK_INSTANTIATE)
#undef FC_PACK_INSTANTIATE

}  // namespace fastconv::cpu
