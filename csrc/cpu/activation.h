// activation.h: elementwise ReLU, sigmoid, leaky ReLU and tanh, forward and backward, on contiguous 1-D
// arrays of length n (the caller passes ravelled views). Any aliasing of input and output at the same address
// is allowed.
#pragma once
#include <cstdint>

#include "common/activation_step.h"
#include "common/dtype.h"

namespace fastconv::cpu {

// The ReLU of one value as every ReLU here computes it (relu_forward, and the one fused into the convolution's
// write-back), shared with the CUDA kernels: common/activation_step.h.
using fastconv::relu_value;

// out = relu_value(x) elementwise
template <typename T>
void relu_forward(const T* x, T* out, std::int64_t n);

// dx = (out <= 0) ? 0 : dout, where out is the forward output (the book's mask x <= 0)
template <typename T>
void relu_backward(const T* dout, const T* out, T* dx, std::int64_t n);

// out = 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) for x < 0 (never overflows)
template <typename T>
void sigmoid_forward(const T* x, T* out, std::int64_t n);

// dx = (dout * (1 - out)) * out
template <typename T>
void sigmoid_backward(const T* dout, const T* out, T* dx, std::int64_t n);

// out = (x <= 0) ? alpha * x : x (NaN passes through)
template <typename T>
void leaky_relu_forward(const T* x, T* out, std::int64_t n, double alpha);

// dx = (out <= 0) ? alpha * dout : dout, out being the forward output; right for alpha >= 0 (the caller
// checks), where out <= 0 exactly where x <= 0
template <typename T>
void leaky_relu_backward(const T* dout, const T* out, T* dx, std::int64_t n, double alpha);

// out = tanh(x)
template <typename T>
void tanh_forward(const T* x, T* out, std::int64_t n);

// dx = dout * (1 - out * out)
template <typename T>
void tanh_backward(const T* dout, const T* out, T* dx, std::int64_t n);

// f16 / bf16 (activation.cpp): blocks of values widened to float, the float kernel's formula, one rounding on the
// store; the same results as the float32 kernel on the widened input, rounded.
#define FC_ACTIVATION_HALF_DECL_(S, SUF)                                           \
  template <> void relu_forward<S>(const S*, S*, std::int64_t);                    \
  template <> void relu_backward<S>(const S*, const S*, S*, std::int64_t);         \
  template <> void sigmoid_forward<S>(const S*, S*, std::int64_t);                 \
  template <> void sigmoid_backward<S>(const S*, const S*, S*, std::int64_t);      \
  template <> void leaky_relu_forward<S>(const S*, S*, std::int64_t, double);      \
  template <> void leaky_relu_backward<S>(const S*, const S*, S*, std::int64_t, double); \
  template <> void tanh_forward<S>(const S*, S*, std::int64_t);                    \
  template <> void tanh_backward<S>(const S*, const S*, S*, std::int64_t);
FC_HALF_TYPES(FC_ACTIVATION_HALF_DECL_)
#undef FC_ACTIVATION_HALF_DECL_

}  // namespace fastconv::cpu
