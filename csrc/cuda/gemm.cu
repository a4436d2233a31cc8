// gemm.cu: C (M, N) = alpha * op(A) op(B) + beta * C (+ a bias per column), row-major, float and double, on CUDA
// cores in the input precision (no TF32: the same numbers as the reference to float32 rounding).
//
// Tiling: a block of 256 threads computes a BM x BN = 64 x 64 tile of C, each thread a TM x TN = 4 x 4 patch held
// in registers; op(A) and op(B) are staged through shared memory BK = 16 columns / rows at a time, A's tile stored
// transposed (k-major) so that the inner product reads both tiles with unit stride. The loads map consecutive
// threads to consecutive addresses of the global array whichever way it is transposed (coalesced). Each element
// of C sums its K products in order k = 0, 1, ..., K-1 in one thread: results do not depend on the launch.
#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int kGemmThreads = (BM / TM) * (BN / TN);  // 256
static_assert(BM * BK % kGemmThreads == 0 && BN * BK % kGemmThreads == 0, "tile loads must divide evenly");

template <typename T>
__global__ void __launch_bounds__(kGemmThreads)
gemm_k(bool ta, bool tb, i64 M, i64 N, i64 K, T alpha, const T* __restrict__ A, i64 lda, const T* __restrict__ B,
       i64 ldb, T beta, T* __restrict__ C, i64 ldc, const T* __restrict__ bias) {
  __shared__ T As[BK][BM];  // As[k][m] = op(A)[m0 + m, k0 + k]
  __shared__ T Bs[BK][BN];  // Bs[k][n] = op(B)[k0 + k, n0 + n]
  const int tid = threadIdx.x;
  const int tr = tid / (BN / TN), tc = tid % (BN / TN);
  const i64 m0 = static_cast<i64>(blockIdx.y) * BM, n0 = static_cast<i64>(blockIdx.x) * BN;
  T acc[TM][TN] = {};

  for (i64 k0 = 0; k0 < K; k0 += BK) {
    for (int e = tid; e < BM * BK; e += kGemmThreads) {
      // op(A)[m, k] is A[m, k] (row m contiguous in k) or A[k, m] (contiguous in m): walk the contiguous index
      const int mm = ta ? e % BM : e / BK, kk = ta ? e / BM : e % BK;
      const i64 m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < M && k < K) ? (ta ? A[k * lda + m] : A[m * lda + k]) : T(0);
    }
    for (int e = tid; e < BN * BK; e += kGemmThreads) {
      // op(B)[k, n] is B[k, n] (contiguous in n) or B[n, k] (contiguous in k)
      const int nn = tb ? e / BK : e % BN, kk = tb ? e % BK : e / BN;
      const i64 n = n0 + nn, k = k0 + kk;
      Bs[kk][nn] = (n < N && k < K) ? (tb ? B[n * ldb + k] : B[k * ldb + n]) : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][tr * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const i64 m = m0 + tr * TM + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const i64 n = n0 + tc * TN + j;
      if (n >= N) continue;
      T v = alpha * acc[i][j];
      if (beta != T(0)) v += beta * C[m * ldc + n];  // beta == 0 never reads C (it may hold NaN)
      if (bias != nullptr) v += bias[n];
      C[m * ldc + n] = v;
    }
  }
}

// C = beta * C (+ bias) when K == 0: the product is empty.
template <typename T>
__global__ void scale_k(i64 M, i64 N, T beta, T* C, i64 ldc, const T* bias) {
  FC_GRID_LOOP(i, M * N) {
    const i64 m = i / N, n = i % N;
    T v = beta != T(0) ? beta * C[m * ldc + n] : T(0);
    if (bias != nullptr) v += bias[n];
    C[m * ldc + n] = v;
  }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, T alpha, const T* A, i64 lda, const T* B, i64 ldb,
          T beta, T* C, i64 ldc, const T* bias) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    scale_k<T><<<blocks_for(M * N), kThreads, 0, stream()>>>(M, N, beta, C, ldc, bias);
    FC_CUDA_LAUNCHED("gemm (K = 0)");
    return;
  }
  const dim3 grid(static_cast<unsigned>((N + BN - 1) / BN), static_cast<unsigned>((M + BM - 1) / BM));
  if (grid.y > 65535) throw std::invalid_argument("gemm: M is too large for one launch (more than 65535 * 64 rows)");
  gemm_k<T><<<grid, kGemmThreads, 0, stream()>>>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
  FC_CUDA_LAUNCHED("gemm");
}

#define FC_GEMM_INSTANTIATE(T, S)                                                                          \
  template void gemm<T>(bool, bool, i64, i64, i64, T, const T*, i64, const T*, i64, T, T*, i64, const T*);
FC_FLOAT_TYPES(FC_GEMM_INSTANTIATE)
#undef FC_GEMM_INSTANTIATE

}  // namespace fastconv::cuda
