// affine.cu: the fully connected layer on the CUDA GEMM. x (N, D), W (D, M), b (M,), out / dout (N, M).
// Forward: out = x W with b added in the GEMM's epilogue. Backward: dx = dout W^T, dW = x^T dout, and db the column
// sums of dout, one thread per column summing the rows in order (deterministic, coalesced across the warp).
#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

template <typename T>
__global__ void column_sums_k(const T* dout, T* db, i64 N, i64 M) {
  FC_GRID_LOOP(j, M) {
    T s = T(0);
    for (i64 n = 0; n < N; ++n) s += dout[n * M + j];
    db[j] = s;
  }
}

}  // namespace

template <typename T>
void affine_forward(const T* x, const T* W, const T* b, T* out, i64 N, i64 D, i64 M) {
  gemm<T>(false, false, N, M, D, T(1), x, D, W, M, T(0), out, M, b);
}

template <typename T>
void affine_backward(const T* x, const T* W, const T* dout, T* dx, T* dW, T* db, i64 N, i64 D, i64 M) {
  gemm<T>(false, true, N, D, M, T(1), dout, M, W, M, T(0), dx, D, nullptr);
  gemm<T>(true, false, D, M, N, T(1), x, D, dout, M, T(0), dW, M, nullptr);
  if (M == 0) return;
  column_sums_k<T><<<blocks_for(M), kThreads, 0, stream()>>>(dout, db, N, M);
  FC_CUDA_LAUNCHED("affine_backward db");
}

#define FC_AFFINE_INSTANTIATE(T, S)                                                         \
  template void affine_forward<T>(const T*, const T*, const T*, T*, i64, i64, i64); \
  template void affine_backward<T>(const T*, const T*, const T*, T*, T*, T*, i64, i64, i64);
FC_FLOAT_TYPES(FC_AFFINE_INSTANTIATE)
#undef FC_AFFINE_INSTANTIATE

}  // namespace fastconv::cuda
