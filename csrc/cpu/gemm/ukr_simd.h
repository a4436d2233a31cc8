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

// b is a packed sliver (row k at b + k*NV*VL).
template <typename T, int MR, int NV, int VL>
inline void ukr_simd(index_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, index_t ldc,
                     T alpha, T beta) {
  typedef T V __attribute__((vector_size(VL * sizeof(T))));
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    // the C tile is read (beta != 0) or written only after the k loop: start fetching its lines now so
    // the write-back does not wait on L2/L3 misses (C is the one operand that is not packed). Measured,
    // SGEMM 1024^3 on one Zen 3 core, 5 alternating runs: 56-68 -> 65-73 GFLOP/s.
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NV * VL - 1, 1);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  }

  for (index_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], b + j * VL, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = splat<V, T, VL>(a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
    a += MR;
    b += NV * VL;
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
// gather tile (the convolution, any stride): A is never packed. Element (i, k) of A is a[aoffs[i] + kidx[k]]
// in a padded image: with aoffs = output pixels and kidx = filter taps it is the forward's column matrix
// (C = out^T, B = W^T), with aoffs = taps and kidx = pixels the weight gradient's (C = dW^T, B = dout^T).
// B is a packed NR sliver per image. Same register blocking as the GEMM micro-kernel: MR*NV accumulators;
// per k one index load, NV loads of B and MR broadcasts (scalar loads never split a cache line, unlike
// vector loads at the arbitrary offsets of shifted views).
template <typename T, int MR, int NV, int VL>
inline void rows_tile(index_t kc, index_t nimg, const T* __restrict a, index_t as, const index_t* __restrict aoffs,
                      const index_t* __restrict kidx, const T* __restrict b, index_t bs, T* __restrict c,
                      index_t ldc, bool accumulate) {
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
      const index_t o = kidx[k];
      V bv[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], bk + k * NV * VL + j * VL, sizeof(V));
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V av = splat<V, T, VL>(ar[i][o]);
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

// ------------------------------------------------------------------------------------------------------
// transpose-add (tr_fn): float 8 x 8 blocks through AVX registers, the rest by the portable loop
template <typename T>
void transpose_bias(const T* src, index_t lds, index_t rows, index_t cols, const T* bias, T* dst, index_t ldd,
                    bool relu) {
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    const index_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (index_t j0 = 0; j0 < c8; j0 += 8)
      for (index_t i0 = 0; i0 < r8; i0 += 8) {
        __m256 r[8], t[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (i0 + i) * lds + j0);
        // 8 x 8 transpose: interleave pairs, then quads, then 128-bit halves
        for (int i = 0; i < 8; i += 2) {
          t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
          t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
          r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
          r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
          r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
          r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; ++i) {
          t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
          t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
        }
        for (int j = 0; j < 8; ++j) {
          __m256 v = bias ? _mm256_add_ps(t[j], _mm256_set1_ps(bias[j0 + j])) : t[j];
          // relu_value (activation.h) on 8 lanes: v <= 0 (false for NaN, which passes) becomes +0
          if (relu) v = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LE_OQ), v);
          _mm256_storeu_ps(dst + (j0 + j) * ldd + i0, v);
        }
      }
    // the edges: rows r8.. of every column, columns c8.. of every row
    if (r8 < rows) transpose_bias_ref(src + r8 * lds, lds, rows - r8, cols, bias, dst + r8, ldd, relu);
    if (c8 < cols)
      transpose_bias_ref(src + c8, lds, r8, cols - c8, bias ? bias + c8 : bias, dst + c8 * ldd, ldd, relu);
    return;
  }
#endif
  transpose_bias_ref(src, lds, rows, cols, bias, dst, ldd, relu);
}

// The registry entry of one ISA for element type T: micro-kernel MR x NR (NR = NV vectors of VL lanes),
// the RMR x RNR gather tile and the transpose-add.
template <typename T, int MR, int NR, int VL>
void ukr_packed(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta) {
  ukr_simd<T, MR, NR / VL, VL>(kc, a, b, c, ldc, alpha, beta);
}
template <typename T, int RMR, int RNR, int VL>
void rows(index_t kc, index_t nimg, const T* a, index_t as, const index_t* aoffs, const index_t* kidx, const T* b,
          index_t bs, T* c, index_t ldc, bool accumulate) {
  rows_tile<T, RMR, RNR / VL, VL>(kc, nimg, a, as, aoffs, kidx, b, bs, c, ldc, accumulate);
}
template <typename T, int MR, int NR, int VL, int RMR, int RNR>
Ukr<T> make_ukr(const char* name) {
  static_assert(NR % VL == 0 && RNR % VL == 0, "NR must be a whole number of vectors");
  return {MR, NR, &ukr_packed<T, MR, NR, VL>, name, RMR, RNR, &rows<T, RMR, RNR, VL>, &transpose_bias<T>,
          0, 0, nullptr};
}
// ... with a second, wider gather tile RMR2 x RNR2 (gemm.h: gather_ukr)
template <typename T, int MR, int NR, int VL, int RMR, int RNR, int RMR2, int RNR2>
Ukr<T> make_ukr(const char* name) {
  static_assert(RNR2 % VL == 0 && RNR2 > RNR, "the second gather tile is the wider one");
  Ukr<T> u = make_ukr<T, MR, NR, VL, RMR, RNR>(name);
  u.rows2_mr = RMR2;
  u.rows2_nr = RNR2;
  u.rows2 = &rows<T, RMR2, RNR2, VL>;
  return u;
}

}  // namespace
}  // namespace fastconv::cpu
