// activation.cu: element-wise ReLU and sigmoid, forward and backward, as csrc/cpu/activation.cpp computes them
// (the same formula per element, so the same bits: no reductions here).
#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

template <typename T>
__global__ void relu_forward_k(const T* x, T* out, i64 n) {
  FC_GRID_LOOP(i, n) {
    const T v = x[i];
    out[i] = v <= T(0) ? T(0) : v;  // NaN passes, -0.0 becomes +0.0 (cpu::relu_value)
  }
}

template <typename T>
__global__ void relu_backward_k(const T* dout, const T* out, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = out[i] <= T(0) ? T(0) : dout[i];
}

// 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below: exp never overflows.
template <typename T>
__global__ void sigmoid_forward_k(const T* x, T* out, i64 n) {
  FC_GRID_LOOP(i, n) {
    const T v = x[i];
    if (v >= T(0)) {
      out[i] = T(1) / (T(1) + exp(-v));
    } else {
      const T e = exp(v);
      out[i] = e / (T(1) + e);
    }
  }
}

template <typename T>
__global__ void sigmoid_backward_k(const T* dout, const T* out, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = (dout[i] * (T(1) - out[i])) * out[i];
}

}  // namespace

template <typename T>
void relu_forward(const T* x, T* out, i64 n, Stream s) {
  if (n == 0) return;
  relu_forward_k<T><<<blocks_for(n), kThreads, 0, s>>>(x, out, n);
  FC_CUDA_LAUNCHED("relu_forward");
}

template <typename T>
void relu_backward(const T* dout, const T* out, T* dx, i64 n, Stream s) {
  if (n == 0) return;
  relu_backward_k<T><<<blocks_for(n), kThreads, 0, s>>>(dout, out, dx, n);
  FC_CUDA_LAUNCHED("relu_backward");
}

template <typename T>
void sigmoid_forward(const T* x, T* out, i64 n, Stream s) {
  if (n == 0) return;
  sigmoid_forward_k<T><<<blocks_for(n), kThreads, 0, s>>>(x, out, n);
  FC_CUDA_LAUNCHED("sigmoid_forward");
}

template <typename T>
void sigmoid_backward(const T* dout, const T* out, T* dx, i64 n, Stream s) {
  if (n == 0) return;
  sigmoid_backward_k<T><<<blocks_for(n), kThreads, 0, s>>>(dout, out, dx, n);
  FC_CUDA_LAUNCHED("sigmoid_backward");
}

#define FC_ACTIVATION_INSTANTIATE(T, S)                                  \
  template void relu_forward<T>(const T*, T*, i64, Stream);             \
  template void relu_backward<T>(const T*, const T*, T*, i64, Stream);  \
  template void sigmoid_forward<T>(const T*, T*, i64, Stream);          \
  template void sigmoid_backward<T>(const T*, const T*, T*, i64, Stream);
FC_FLOAT_TYPES(FC_ACTIVATION_INSTANTIATE)
#undef FC_ACTIVATION_INSTANTIATE

}  // namespace fastconv::cuda
