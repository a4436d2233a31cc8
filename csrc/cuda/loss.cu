// loss.cu: softmax and softmax + cross-entropy (the book's SoftmaxWithLoss), forward and backward, on (N, K)
// row-major arrays, as csrc/cpu/loss.cpp computes them: per row, y = exp(x - max) / sum with the sum of exps in
// double and rounded to T once; the loss of each row in double, -log(y[t] + 1e-7) for labels, -sum t log(y + 1e-7)
// for dense targets. One warp per row; warp reductions and the final sum over rows have a fixed order, so the loss
// has the same bits on every run (they may differ from the CPU's in the last bits: another summation order).
#include <cmath>

#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

constexpr double kLogEps = 1e-7;  // the book's guard against log(0)
constexpr int kRowsPerBlock = kThreads / 32;

// Softmax of row n into y (which may be x): the warp's lanes stride over the K columns.
template <typename T>
__device__ void softmax_row(const T* x, T* y, i64 K, int lane) {
  T m = x[0];
  for (i64 k = lane; k < K; k += 32) m = x[k] > m ? x[k] : m;
  m = warp_max(m);
  double s = 0.0;
  for (i64 k = lane; k < K; k += 32) {
    const T e = exp(x[k] - m);
    y[k] = e;
    s += static_cast<double>(e);
  }
  const T st = static_cast<T>(warp_sum(s));
  __syncwarp();
  for (i64 k = lane; k < K; k += 32) y[k] = y[k] / st;
}

template <typename T>
__global__ void softmax_k(const T* x, T* y, i64 N, i64 K) {
  const i64 n = static_cast<i64>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (n < N) softmax_row(x + n * K, y + n * K, K, threadIdx.x % 32);
}

// Labels: row_loss[n] = log(y[n, t[n]] + eps), NaN for a label outside [0, K) (never read through).
template <typename T>
__global__ void softmax_ce_labels_k(const T* x, const i64* t, T* y, double* row_loss, i64 N, i64 K) {
  const i64 n = static_cast<i64>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= N) return;
  T* yn = y + n * K;
  softmax_row(x + n * K, yn, K, lane);
  __syncwarp();
  if (lane == 0) {
    const i64 lab = t[n];
    row_loss[n] = (lab >= 0 && lab < K) ? log(static_cast<double>(yn[lab]) + kLogEps) : nan("");
  }
}

template <typename T>
__global__ void softmax_ce_dense_k(const T* x, const T* t, T* y, double* row_loss, i64 N, i64 K) {
  const i64 n = static_cast<i64>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= N) return;
  T* yn = y + n * K;
  const T* tn = t + n * K;
  softmax_row(x + n * K, yn, K, lane);
  __syncwarp();
  double s = 0.0;
  for (i64 k = lane; k < K; k += 32) s += static_cast<double>(tn[k]) * log(static_cast<double>(yn[k]) + kLogEps);
  s = warp_sum(s);
  if (lane == 0) row_loss[n] = s;
}

// One block: out = -(sum of row_loss) / N, each thread summing a strided set of rows in order, then a fixed tree.
__global__ void mean_neg_k(const double* row_loss, i64 N, double* out) {
  __shared__ double part[kThreads];
  double s = 0.0;
  for (i64 i = threadIdx.x; i < N; i += kThreads) s += row_loss[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = -part[0] / static_cast<double>(N);
}

template <typename T>
__global__ void softmax_ce_backward_labels_k(const T* y, const i64* t, T* dx, i64 N, i64 K, T Nt, T d) {
  FC_GRID_LOOP(i, N * K) {
    const i64 n = i / K, k = i % K;
    const i64 lab = t[n];
    const T v = (k == lab) ? y[i] - T(1) : y[i];  // a label outside [0, K) matches no column
    dx[i] = (v / Nt) * d;
  }
}

template <typename T>
__global__ void softmax_ce_backward_dense_k(const T* y, const T* t, T* dx, i64 NK, T Nt, T d) {
  FC_GRID_LOOP(i, NK) dx[i] = ((y[i] - t[i]) / Nt) * d;
}

unsigned row_blocks(i64 N) { return static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock); }

// Scratch for the per-row losses and the result, from the stream-ordered allocator (returned to its pool).
struct LossScratch {
  double* rows = nullptr;
  double* out = nullptr;
  Stream s = stream();
  explicit LossScratch(i64 N) {
    FC_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&rows), sizeof(double) * (N + 1), s));
    out = rows + N;
  }
  ~LossScratch() { cudaFreeAsync(rows, s); }
  double finish(i64 N) {
    mean_neg_k<<<1, kThreads, 0, stream()>>>(rows, N, out);
    FC_CUDA_LAUNCHED("softmax_ce mean");
    double host = 0.0;
    FC_CUDA_CHECK(cudaMemcpyAsync(&host, out, sizeof(double), cudaMemcpyDeviceToHost, s));
    FC_CUDA_CHECK(cudaStreamSynchronize(s));  // the loss must reach the host
    return host;
  }
};

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, i64 N, i64 K) {
  if (N == 0 || K == 0) return;
  softmax_k<T><<<row_blocks(N), kThreads, 0, stream()>>>(x, y, N, K);
  FC_CUDA_LAUNCHED("softmax_forward");
}

template <typename T>
double softmax_ce_forward_labels(const T* x, const i64* t, T* y, i64 N, i64 K) {
  LossScratch scratch(N);
  softmax_ce_labels_k<T><<<row_blocks(N), kThreads, 0, stream()>>>(x, t, y, scratch.rows, N, K);
  FC_CUDA_LAUNCHED("softmax_ce_forward_labels");
  return scratch.finish(N);
}

template <typename T>
double softmax_ce_forward_dense(const T* x, const T* t, T* y, i64 N, i64 K) {
  LossScratch scratch(N);
  softmax_ce_dense_k<T><<<row_blocks(N), kThreads, 0, stream()>>>(x, t, y, scratch.rows, N, K);
  FC_CUDA_LAUNCHED("softmax_ce_forward_dense");
  return scratch.finish(N);
}

template <typename T>
void softmax_ce_backward_labels(const T* y, const i64* t, T* dx, i64 N, i64 K, double dout) {
  if (N * K == 0) return;
  softmax_ce_backward_labels_k<T><<<blocks_for(N * K), kThreads, 0, stream()>>>(y, t, dx, N, K, static_cast<T>(N),
                                                                         static_cast<T>(dout));
  FC_CUDA_LAUNCHED("softmax_ce_backward_labels");
}

template <typename T>
void softmax_ce_backward_dense(const T* y, const T* t, T* dx, i64 N, i64 K, double dout) {
  if (N * K == 0) return;
  softmax_ce_backward_dense_k<T><<<blocks_for(N * K), kThreads, 0, stream()>>>(y, t, dx, N * K, static_cast<T>(N),
                                                                        static_cast<T>(dout));
  FC_CUDA_LAUNCHED("softmax_ce_backward_dense");
}

#define FC_LOSS_INSTANTIATE(T, S)                                                                      \
  template void softmax_forward<T>(const T*, T*, i64, i64);                                   \
  template double softmax_ce_forward_labels<T>(const T*, const i64*, T*, i64, i64);           \
  template double softmax_ce_forward_dense<T>(const T*, const T*, T*, i64, i64);              \
  template void softmax_ce_backward_labels<T>(const T*, const i64*, T*, i64, i64, double);    \
  template void softmax_ce_backward_dense<T>(const T*, const T*, T*, i64, i64, double);
FC_FLOAT_TYPES(FC_LOSS_INSTANTIATE)
#undef FC_LOSS_INSTANTIATE

}  // namespace fastconv::cuda
