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
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};

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

// Sum of the VL lanes at v by halving: (lo half + hi half) as vectors, recursively (fixed order).
template <typename T, int VL>
inline T hsum(const T* v) {
  if constexpr (VL <= 2) {
    return VL == 1 ? v[0] : v[0] + v[1];
  } else {
    typedef T H __attribute__((vector_size(VL / 2 * sizeof(T))));
    H lo, hi;
    std::memcpy(&lo, v, sizeof(H));
    std::memcpy(&hi, v + VL / 2, sizeof(H));
    lo += hi;
    T half[VL / 2];
    std::memcpy(half, &lo, sizeof(H));
    return hsum<T, VL / 2>(half);
  }
}

// ------------------------------------------------------------------------------------------------------
// dot-product tile (weight gradient of the stride-1 convolution): both operands contiguous along k.
//   c[i*MT + j] = sum_img sum_k a[img*as + i*lda + k] * b[img*bs + boffs[j] + k],  i < MF, j < MT
// K is a multiple of VL (the caller zero-pads a). MF*MT vector accumulators run over all images of a
// batch group before one horizontal sum each, in a fixed lane order (deterministic).
template <typename T, int MF, int MT, int VL>
inline void dot_tile(index_t K, index_t nimg, const T* __restrict a, index_t as, index_t lda,
                     const T* __restrict b, index_t bs, const index_t* __restrict boffs, T* __restrict c) {
  typedef T V __attribute__((vector_size(VL * sizeof(T))));
  V acc[MF][MT];
#pragma GCC unroll 8
  for (int i = 0; i < MF; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < MT; ++j) acc[i][j] = V{};
  for (index_t img = 0; img < nimg; ++img) {
    const T* ai = a + img * as;
    const T* bj[MT];
#pragma GCC unroll 8
    for (int j = 0; j < MT; ++j) bj[j] = b + img * bs + boffs[j];
    for (index_t k = 0; k < K; k += VL) {
      V av[MF];
#pragma GCC unroll 8
      for (int i = 0; i < MF; ++i) std::memcpy(&av[i], ai + i * lda + k, sizeof(V));
#pragma GCC unroll 8
      for (int j = 0; j < MT; ++j) {
        V bv;
        std::memcpy(&bv, bj[j] + k, sizeof(V));
#pragma GCC unroll 8
        for (int i = 0; i < MF; ++i) acc[i][j] += av[i] * bv;
      }
    }
  }
  for (int i = 0; i < MF; ++i)
    for (int j = 0; j < MT; ++j) {
      T lane[VL];
      std::memcpy(lane, &acc[i][j], sizeof(V));
      c[i * MT + j] = hsum<T, VL>(lane);
    }
}

// The registry entry of one ISA for element type T: micro-kernel MR x NR (NR = NV vectors of VL lanes),
// its offset form, and the DMF x DMT dot-product tile.
template <typename T, int MR, int NR, int VL, int DMF, int DMT>
void ukr_packed(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta) {
  ukr_simd<T, MR, NR / VL, VL>(kc, a, b, c, ldc, alpha, beta);
}
template <typename T, int MR, int NR, int VL, int DMF, int DMT>
void ukr_offs(index_t kc, const T* a, const T* b, const index_t* offs, T* c, index_t ldc, T alpha, T beta) {
  ukr_simd<T, MR, NR / VL, VL, true>(kc, a, b, c, ldc, alpha, beta, offs);
}
template <typename T, int MR, int NR, int VL, int DMF, int DMT>
void dot(index_t K, index_t nimg, const T* a, index_t as, index_t lda, const T* b, index_t bs, const index_t* boffs,
         T* c) {
  dot_tile<T, DMF, DMT, VL>(K, nimg, a, as, lda, b, bs, boffs, c);
}
template <typename T, int MR, int NR, int VL, int DMF, int DMT>
Ukr<T> make_ukr(const char* name) {
  static_assert(NR % VL == 0, "NR must be a whole number of vectors");
  return {MR, NR, &ukr_packed<T, MR, NR, VL, DMF, DMT>, name, &ukr_offs<T, MR, NR, VL, DMF, DMT>, DMF, DMT, VL,
          &dot<T, MR, NR, VL, DMF, DMT>};
}

}  // namespace
}  // namespace fastconv::cpu
