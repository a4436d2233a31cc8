// gemm.h: C = alpha * A B + beta * C, row-major C, A and B given as strided views so that transposes are
// free: element (i, k) of A is A[i*rsa + k*csa], element (k, j) of B is B[k*rsb + j*csb].
// Variants: micro-kernels ukr_ref_4x8 (portable), ukr_avx2_6x16/6x8, ukr_avx512_16x16 or 12x32 / 8x16, chosen
// at run time from CPUID or forced with FASTCONV_ISA / set_cpu_isa. The loop nest follows BLIS (Van Zee & van de
// Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015).
#pragma once
#include <cstdint>

#include "common/half.h"
#include "common/policy.h"
#include "cpu/activation.h"

namespace fastconv::cpu {

using index_t = std::int64_t;

// A micro-kernel: C(mr x nr, row stride ldc) = alpha * sum_k a[k*mr + i] * b[k*nr + j] + beta * C, on packed
// slivers a (kc x mr) and b (kc x nr). beta == 0 never reads C.
template <typename T>
using ukr_fn = void (*)(index_t kc, const T* a, const T* b, T* c, index_t ldc, T alpha, T beta);

// Gather tile (the convolution, any stride): C (rows_mr x rows_nr, row stride ldc) = [C +] sum over nimg images
// and k < kc of a[img*as + aoffs[i] + kidx[k]] * b[img*bs + k*rows_nr + j]: A is read in place at the sums
// of a row offset and a column offset (pixel + tap of a padded image, see conv.cpp), B is a packed sliver
// per image. accumulate == false never reads C.
template <typename T>
using rows_fn = void (*)(index_t kc, index_t nimg, const T* a, index_t as, const index_t* aoffs,
                         const index_t* kidx, const T* b, index_t bs, T* c, index_t ldc, bool accumulate);

// dst[j*ldd + i] = src[i*lds + j] (+ bias[j] unless bias is null) for i < rows, j < cols, then ReLU'd if relu
// ((v <= 0) ? 0 : v, as relu_forward): the gather tiles' pixels x filters result into NCHW with the bias (and
// a fused ReLU), dout into filter slivers (8 x 8 register transposes where the ISA has them).
template <typename T>
using tr_fn = void (*)(const T* src, index_t lds, index_t rows, index_t cols, const T* bias, T* dst, index_t ldd,
                       bool relu);

template <typename T>
struct Ukr {
  int mr, nr;
  ukr_fn<T> fn;
  const char* name;
  int rows_mr, rows_nr;
  rows_fn<T> rows;
  tr_fn<T> tr;
  // a wider gather tile for products with enough columns (null where the ISA has none): see gather_ukr
  int rows2_mr, rows2_nr;
  rows_fn<T> rows2;
};

// The micro-kernels for a gather-tile product with `cols` columns (filters): u itself, or u with its wider
// gather tile where it has one and `cols` pads to it with at most 1/8 more work than to the narrow one
// (filters 32, 49-64, 81-96, ... take it; 16 and 33-48 do not). Measured, gemm/config.h.
template <typename T>
Ukr<T> gather_ukr(const Ukr<T>& u, std::int64_t cols) {
  Ukr<T> g = u;
  const auto pad = [cols](std::int64_t m) { return (cols + m - 1) / m * m; };
  if (u.rows2 != nullptr && cols >= u.rows2_nr && pad(u.rows2_nr) * 8 <= pad(u.rows_nr) * 9) {
    g.rows_mr = u.rows2_mr;
    g.rows_nr = u.rows2_nr;
    g.rows = u.rows2;
  }
  return g;
}

// The portable transpose-add (tr_fn), blocked so that both sides stay in L1.
template <typename T>
void transpose_bias_ref(const T* src, index_t lds, index_t rows, index_t cols, const T* bias, T* dst, index_t ldd,
                        bool relu) {
  constexpr index_t B = 16;
  for (index_t i0 = 0; i0 < rows; i0 += B)
    for (index_t j = 0; j < cols; ++j) {
      const index_t i1 = i0 + B < rows ? i0 + B : rows;
      const T bj = bias ? bias[j] : T(0);
      for (index_t i = i0; i < i1; ++i) {
        const T v = src[i * lds + j] + bj;
        dst[j * ldd + i] = relu ? relu_value(v) : v;
      }
    }
}

// The micro-kernel in use for T (follows the ISA in use, cpu/isa.h).
template <typename T>
const Ukr<T>& active_ukr();

// Runs on the calling thread only (used inside parallel regions, e.g. one image per thread).
// alpha and beta are compute_t<T> (float for the 16-bit storage types).
template <typename T>
void gemm_serial(index_t M, index_t N, index_t K, compute_t<T> alpha, const T* A, index_t rsa, index_t csa,
                 const T* B, index_t rsb, index_t csb, compute_t<T> beta, T* C, index_t ldc);

// Splits C across up to `nthreads` OpenMP threads (rows or columns, whichever is longer). Every element of
// C is computed by one thread in the same order, so the result does not depend on nthreads.
template <typename T>
void gemm(index_t M, index_t N, index_t K, compute_t<T> alpha, const T* A, index_t rsa, index_t csa, const T* B,
          index_t rsb, index_t csb, compute_t<T> beta, T* C, index_t ldc, int nthreads);

// f16 / bf16 (gemm_half.cpp): float slivers packed from 16-bit A and B, float32 accumulation over all of K on
// the float micro-kernel, one rounding of alpha * AB + beta * C per element; thread-count independent.
#define FC_GEMM_HALF_DECL_(S)                                                                                  \
  template <>                                                                                                  \
  void gemm<S>(index_t, index_t, index_t, float, const S*, index_t, index_t, const S*, index_t, index_t, float, \
               S*, index_t, int);                                                                              \
  template <>                                                                                                  \
  void gemm_serial<S>(index_t, index_t, index_t, float, const S*, index_t, index_t, const S*, index_t, index_t, \
                      float, S*, index_t);
FC_GEMM_HALF_DECL_(f16)
FC_GEMM_HALF_DECL_(bf16)
// the compute policy's float64 types (common/policy.h), same code: packed as float, stored as double
FC_GEMM_HALF_DECL_(f64_as_f32)
FC_GEMM_HALF_DECL_(f64_as_f16)
FC_GEMM_HALF_DECL_(f64_as_bf16)
#undef FC_GEMM_HALF_DECL_

// ------------------------------------------------------------------------------------------------------
// pre-packed operands, for callers that reuse a packed operand across many GEMMs (conv: W for every image)
// or produce B directly in packed order (conv: im2col writes the packed panel). Layout: one block per KC
// slice of K, each block ceil(M/mr) (resp. ceil(N/nr)) slivers of kc x mr (kc x nr). No MC/NC blocking:
// meant for operands with a small M (filters) and an N that is one image's pixels.

inline index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }
template <typename T>
index_t gemm_kc();  // the KC used by every GEMM of T (config.h)
template <typename T>
void pack_a_full(const Ukr<T>& u, index_t M, index_t K, const T* A, index_t rsa, index_t csa, T* dst);
template <typename T>
void pack_b_full(const Ukr<T>& u, index_t K, index_t N, const T* B, index_t rsb, index_t csb, T* dst);
// C = alpha * A B + beta * C on pre-packed A (round_up(M, mr) * K values) and B (round_up(N, nr) * K values).
template <typename T>
void gemm_prepacked(const Ukr<T>& u, index_t M, index_t N, index_t K, T alpha, const T* apack, const T* bpack,
                    T beta, T* C, index_t ldc);
// Rows [r0, r0 + m) of that product alone (r0 a multiple of mr, m <= M - r0; M the rows apack was packed
// with): threads that split a product's rows compute each element exactly as gemm_prepacked does.
template <typename T>
void gemm_prepacked_rows(const Ukr<T>& u, index_t M, index_t r0, index_t m, index_t N, index_t K, T alpha,
                         const T* apack, const T* bpack, T beta, T* C, index_t ldc);

// ------------------------------------------------------------------------------------------------------
// internals shared by gemm.cpp, pack.cpp, macro_kernel.cpp and the ukr_*.cpp files

template <typename T>
void pack_a_mc_kc(index_t mc, index_t kc, const T* A, index_t rsa, index_t csa, int mr, T* dst);
template <typename T>
void pack_b_kc_nc(index_t kc, index_t nc, const T* B, index_t rsb, index_t csb, int nr, T* dst);
template <typename T>
void macro_kernel(const Ukr<T>& u, index_t mc, index_t nc, index_t kc, T alpha, const T* apack,
                  const T* bpack, T beta, T* C, index_t ldc);

// Registries filled by each ukr_*.cpp.
Ukr<float> ukr_ref_f32();
Ukr<double> ukr_ref_f64();
#if FASTCONV_HAVE_X86_UKR
Ukr<float> ukr_avx2_f32();
Ukr<double> ukr_avx2_f64();
Ukr<float> ukr_avx512_f32();
Ukr<float> ukr_avx512w_f32();  // 12 x 32, for two 512-bit FMA pipes (isa.h: avx512_tile)
Ukr<double> ukr_avx512_f64();
#endif

}  // namespace fastconv::cpu
