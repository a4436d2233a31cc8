// activation.cu: element-wise ReLU, sigmoid, leaky ReLU and tanh, forward and backward, one thread per element, on
// the per-element formulas the CPU kernels use (common/activation_step.h): the same bits, nothing is reduced.
#include <cmath>

#include "common/activation_step.h"
#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

template <typename T>
__global__ void relu_forward_k(const T* x, T* out, i64 n) {
  FC_GRID_LOOP(i, n) out[i] = relu_value(x[i]);
}

template <typename T>
__global__ void relu_backward_k(const T* dout, const T* out, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = relu_grad(dout[i], out[i]);
}

template <typename T>
__global__ void sigmoid_forward_k(const T* x, T* out, i64 n) {
  FC_GRID_LOOP(i, n) {
    const T v = x[i];
    out[i] = sigmoid_value(v, exp(-fabs(v)));
  }
}

template <typename T>
__global__ void sigmoid_backward_k(const T* dout, const T* out, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = sigmoid_grad(dout[i], out[i]);
}

template <typename T>
__global__ void leaky_relu_forward_k(const T* x, T* out, i64 n, T alpha) {
  FC_GRID_LOOP(i, n) out[i] = leaky_relu_value(x[i], alpha);
}

template <typename T>
__global__ void leaky_relu_backward_k(const T* dout, const T* out, T* dx, i64 n, T alpha) {
  FC_GRID_LOOP(i, n) dx[i] = leaky_relu_grad(dout[i], out[i], alpha);
}

template <typename T>
__global__ void tanh_forward_k(const T* x, T* out, i64 n) {
  FC_GRID_LOOP(i, n) out[i] = tanh(x[i]);
}

template <typename T>
__global__ void tanh_backward_k(const T* dout, const T* out, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = tanh_grad(dout[i], out[i]);
}

// One grid-stride launch of kernel over n elements on this thread's stream.
template <typename K, typename... A>
void launch(K kernel, i64 n, const char* name, A... args) {
  if (n == 0) return;
  kernel<<<blocks_for(n), kThreads, 0, stream()>>>(args..., n);
  FC_CUDA_LAUNCHED(name);
}

}  // namespace

template <typename T>
void relu_forward(const T* x, T* out, i64 n) {
  launch(relu_forward_k<T>, n, "relu_forward", x, out);
}

template <typename T>
void relu_backward(const T* dout, const T* out, T* dx, i64 n) {
  launch(relu_backward_k<T>, n, "relu_backward", dout, out, dx);
}

template <typename T>
void sigmoid_forward(const T* x, T* out, i64 n) {
  launch(sigmoid_forward_k<T>, n, "sigmoid_forward", x, out);
}

template <typename T>
void sigmoid_backward(const T* dout, const T* out, T* dx, i64 n) {
  launch(sigmoid_backward_k<T>, n, "sigmoid_backward", dout, out, dx);
}

template <typename T>
void leaky_relu_forward(const T* x, T* out, i64 n, double alpha) {
  if (n == 0) return;
  leaky_relu_forward_k<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, out, n, static_cast<T>(alpha));
  FC_CUDA_LAUNCHED("leaky_relu_forward");
}

template <typename T>
void leaky_relu_backward(const T* dout, const T* out, T* dx, i64 n, double alpha) {
  if (n == 0) return;
  leaky_relu_backward_k<T><<<blocks_for(n), kThreads, 0, stream()>>>(dout, out, dx, n, static_cast<T>(alpha));
  FC_CUDA_LAUNCHED("leaky_relu_backward");
}

template <typename T>
void tanh_forward(const T* x, T* out, i64 n) {
  launch(tanh_forward_k<T>, n, "tanh_forward", x, out);
}

template <typename T>
void tanh_backward(const T* dout, const T* out, T* dx, i64 n) {
  launch(tanh_backward_k<T>, n, "tanh_backward", dout, out, dx);
}

#define FC_ACTIVATION_INSTANTIATE(T, S)                                         \
  template void relu_forward<T>(const T*, T*, i64);                            \
  template void relu_backward<T>(const T*, const T*, T*, i64);                 \
  template void sigmoid_forward<T>(const T*, T*, i64);                         \
  template void sigmoid_backward<T>(const T*, const T*, T*, i64);              \
  template void leaky_relu_forward<T>(const T*, T*, i64, double);              \
  template void leaky_relu_backward<T>(const T*, const T*, T*, i64, double);   \
  template void tanh_forward<T>(const T*, T*, i64);                            \
  template void tanh_backward<T>(const T*, const T*, T*, i64);
FC_FLOAT_TYPES(FC_ACTIVATION_INSTANTIATE)
#undef FC_ACTIVATION_INSTANTIATE

}  // namespace fastconv::cuda
