// ukr_simd.h: the register-blocked micro-kernel, written once with GCC/Clang vector extensions and compiled
// per ISA by ukr_avx2.cpp and ukr_avx512.cpp with their own -m flags (so the default build stays baseline
// x86-64). C tile (MR x NV*VL) lives in MR*NV vector registers; each k step loads NV vectors of the packed
// B sliver, broadcasts MR values of the packed A sliver and issues MR*NV FMAs (the files are built with FMA
// enabled and -ffp-contract=fast, so acc += a*b is one vfmadd).
#pragma once
#include <cstring>
#include <type_traits>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {
// Internal linkage on purpose: each ISA file compiles these templates with its own -m flags, and a
// specialisation shared by two files must never be merged by the linker into one copy (it could be the
// AVX-512 one running on the AVX2 path).
namespace {

// All lanes = s, through the ISA's set1 so the compiler emits one vbroadcast from memory per A value (or
// folds it into the FMA). The generic forms are worse: V{} + s adds 0.0 first (a dependent vaddsd per row),
// and lane-by-lane stores get SLP-vectorised into one load plus a shuffle per row (port pressure).
template <typename V, typename T, int VL>
inline V splat(T s) {
#if defined(__AVX512F__)
  if constexpr (VL * sizeof(T) == 64) {
    if constexpr (std::is_same_v<T, float>) return (V)_mm512_set1_ps(s);
    else return (V)_mm512_set1_pd(s);
  }
#endif
#if defined(__AVX__)
  if constexpr (VL * sizeof(T) == 32) {
    if constexpr (std::is_same_v<T, float>) return (V)_mm256_set1_ps(s);
    else return (V)_mm256_set1_pd(s);
  }
#endif
  return V{} + s;
}

// OFFS = false: b is a packed sliver (row k at b + k*NV*VL). OFFS = true: row k of B is at b + offs[k]
// (an unpacked, shifted view: the stride-1 convolution reads its input this way, see conv.cpp).
template <typename T, int MR, int NV, int VL, bool OFFS = false>
inline void ukr_simd(index_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, index_t ldc,
                     T alpha, T beta, const index_t* __restrict offs = nullptr) {
  typedef T V __attribute__((vector_size(VL * sizeof(T))));
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    // the C tile is read (beta != 0) or written only after the k loop: start fetching its lines now so
    // the write-back does not wait on L2/L3 misses (C is the one operand that is not packed). Measured,
    // SGEMM 1024^3 on one Zen 3 core, 5 alternating runs: 56-68 -> 65-73 GFLOP/s. (The offset form writes
    // the conv's small L1/L2-resident scratch tile: no prefetch there.)
    if constexpr (!OFFS) {
      __builtin_prefetch(c + i * ldc, 1);
      __builtin_prefetch(c + i * ldc + NV * VL - 1, 1);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  }

  for (index_t k = 0; k < kc; ++k) {
    V bv[NV];
    const T* bk = OFFS ? b + offs[k] : b;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], bk + j * VL, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = splat<V, T, VL>(a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
    a += MR;
    if (!OFFS) b += NV * VL;
  }

  // write-back: C may be any row stride, so unaligned loads/stores (memcpy compiles to vmovups)
  const V va = splat<V, T, VL>(alpha);
  if (beta == T(0)) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        V r = va * acc[i][j];
        std::memcpy(c + i * ldc + j * VL, &r, sizeof(V));
      }
  } else {
    const V vb = splat<V, T, VL>(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        V old;
        std::memcpy(&old, c + i * ldc + j * VL, sizeof(V));
        V r = va * acc[i][j] + vb * old;
        std::memcpy(c + i * ldc + j * VL, &r, sizeof(V));
      }
  }
}

// ------------------------------------------------------------------------------------------------------
// rows tile (weight gradient of the stride-1 convolution, as dW^T = B_n @ dout_n^T): the MR rows of A are
// the shifted views xp + aoffs[i], read in place (one broadcast per row and k: no packing), B is dout^T
// packed as an NR-filter sliver. Same register blocking as the GEMM micro-kernel: MR*NV accumulators,
// NV loads of B and MR broadcasts per k.
template <typename T, int MR, int NV, int VL>
inline void rows_tile(index_t kc, index_t nimg, const T* __restrict a, index_t as, const index_t* __restrict aoffs,
                      const T* __restrict b, index_t bs, T* __restrict c, index_t ldc, bool accumulate) {
  typedef T V __attribute__((vector_size(VL * sizeof(T))));
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  // the accumulators stay in registers across the images: one write-back of C per call
  for (index_t img = 0; img < nimg; ++img) {
    const T* ar[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) ar[i] = a + img * as + aoffs[i];
    const T* bk = b + img * bs;
    for (index_t k = 0; k < kc; ++k) {
      V bv[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], bk + k * NV * VL + j * VL, sizeof(V));
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V av = splat<V, T, VL>(ar[i][k]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      V r = acc[i][j];
      if (accumulate) {
        V old;
        std::memcpy(&old, c + i * ldc + j * VL, sizeof(V));
        r += old;
      }
      std::memcpy(c + i * ldc + j * VL, &r, sizeof(V));
    }
}

// The registry entry of one ISA for element type T: micro-kernel MR x NR (NR = NV vectors of VL lanes),
// its offset form, and the RMR x RNR rows tile.
template <typename T, int MR, int NR, int VL>
void ukr_packed(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta) {
  ukr_simd<T, MR, NR / VL, VL>(kc, a, b, c, ldc, alpha, beta);
}
template <typename T, int MR, int NR, int VL>
void ukr_offs(index_t kc, const T* a, const T* b, const index_t* offs, T* c, index_t ldc, T alpha, T beta) {
  ukr_simd<T, MR, NR / VL, VL, true>(kc, a, b, c, ldc, alpha, beta, offs);
}
template <typename T, int RMR, int RNR, int VL>
void rows(index_t kc, index_t nimg, const T* a, index_t as, const index_t* aoffs, const T* b, index_t bs, T* c,
          index_t ldc, bool accumulate) {
  rows_tile<T, RMR, RNR / VL, VL>(kc, nimg, a, as, aoffs, b, bs, c, ldc, accumulate);
}
template <typename T, int MR, int NR, int VL, int RMR, int RNR>
Ukr<T> make_ukr(const char* name) {
  static_assert(NR % VL == 0 && RNR % VL == 0, "NR must be a whole number of vectors");
  return {MR, NR, &ukr_packed<T, MR, NR, VL>, name, &ukr_offs<T, MR, NR, VL>, RMR, RNR, &rows<T, RMR, RNR, VL>};
}

}  // namespace
}  // namespace fastconv::cpu
