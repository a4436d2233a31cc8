// activation.cpp: ReLU, sigmoid, leaky ReLU and tanh, forward and backward, elementwise over contiguous
// arrays of length n. Single passes over memory: parallel over static chunks of elements (any split gives the
// same bits, as nothing is reduced), with a vectorisable inner loop. Tiny arrays stay on the calling thread.
// Sigmoid uses the piecewise form that never overflows exp: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below.
#include "cpu/activation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/dtype.h"
#include "cpu/half_convert.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {
// Below this many elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 15;
// Elements per block of the two-loop sigmoid (a stack buffer of exp values that stays in L1).
constexpr std::int64_t kBlock = 512;
}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// ReLU

template <typename T>
void relu_forward(const T* x, T* out, std::int64_t n) {
  // Written as (x <= 0) ? 0 : x rather than max(x, 0): NaN fails the test and passes through, as with the
  // book's out[x <= 0] = 0, and -0.0 becomes +0.0.
  simd_for(n, kParallelMin, [&](std::int64_t i) { out[i] = relu_value(x[i]); });
}

template <typename T>
void relu_backward(const T* dout, const T* out, T* dx, std::int64_t n) {
  simd_for(n, kParallelMin, [&](std::int64_t i) {
    // dout is loaded unconditionally: a load under the condition cannot be vectorised (it might fault), and
    // the scalar branch mispredicts on every other element of a ReLU mask (measured 30x slower).
    const T d = dout[i];
    dx[i] = relu_grad(d, out[i]);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// sigmoid

template <typename T>
void sigmoid_forward(const T* x, T* out, std::int64_t n) {
  // e = exp(-|x|) equals exp(-x) for x >= 0 and exp(x) for x < 0 bit for bit, so both branches of the
  // piecewise form share one exp: out = (x >= 0 ? 1 : e) / (1 + e). The scalar std::exp calls run in their own
  // loop over a block and the select + divide in a second, vectorised one; fused, GCC turns the select into a
  // sign-dependent branch that mispredicts on random data (2.5x slower). NaN stays NaN.
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock, w = std::min(kBlock, n - i0);
    const T* xb = x + i0;
    T* ob = out + i0;
    T e[kBlock];
    for (std::int64_t j = 0; j < w; ++j) e[j] = std::exp(-std::fabs(xb[j]));
#pragma omp simd
    for (std::int64_t j = 0; j < w; ++j) ob[j] = sigmoid_value(xb[j], e[j]);
  }
}

template <typename T>
void sigmoid_backward(const T* dout, const T* out, T* dx, std::int64_t n) {
  simd_for(n, kParallelMin, [&](std::int64_t i) { dx[i] = sigmoid_grad(dout[i], out[i]); });
}

// ---------------------------------------------------------------------------------------------------------------
// leaky ReLU

template <typename T>
void leaky_relu_forward(const T* x, T* out, std::int64_t n, double alpha) {
  // (x <= 0) ? alpha * x : x, the test of relu_value: NaN fails it and passes through.
  const T a = static_cast<T>(alpha);
  simd_for(n, kParallelMin, [&](std::int64_t i) { out[i] = leaky_relu_value(x[i], a); });
}

template <typename T>
void leaky_relu_backward(const T* dout, const T* out, T* dx, std::int64_t n, double alpha) {
  // With alpha >= 0 the output has the sign of the input, so the mask x <= 0 is read from out <= 0.
  const T a = static_cast<T>(alpha);
  simd_for(n, kParallelMin, [&](std::int64_t i) {
    const T d = dout[i];
    dx[i] = leaky_relu_grad(d, out[i], a);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// tanh

template <typename T>
void tanh_forward(const T* x, T* out, std::int64_t n) {
  // std::tanh saturates to +-1 without overflow; it is a library call per element, so the loop is not simd.
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]);
}

template <typename T>
void tanh_backward(const T* dout, const T* out, T* dx, std::int64_t n) {
  simd_for(n, kParallelMin, [&](std::int64_t i) { dx[i] = tanh_grad(dout[i], out[i]); });
}

// ---------------------------------------------------------------------------------------------------------------
// f16 / bf16: load-convert-compute-store per block of kBlock values (two L1-resident float buffers per thread),
// the float kernel on the block (its own parallel region is off below kParallelMin), one rounding on the store

namespace {

template <typename S, typename F>
void half_unary(const S* x, S* out, std::int64_t n, F&& f) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock, w = std::min(kBlock, n - i0);
    float xf[kBlock];
    widen(x + i0, xf, w);
    f(xf, xf, w);
    narrow(xf, out + i0, w);
  }
}

template <typename S, typename F>
void half_binary(const S* dout, const S* out, S* dx, std::int64_t n, F&& f) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock, w = std::min(kBlock, n - i0);
    float df[kBlock], of[kBlock];
    widen(dout + i0, df, w);
    widen(out + i0, of, w);
    f(df, of, df, w);
    narrow(df, dx + i0, w);
  }
}

}  // namespace

#define FC_ACTIVATION_HALF_(S, SUF)                                                                        \
  template <>                                                                                              \
  void relu_forward<S>(const S* x, S* out, std::int64_t n) {                                               \
    half_unary(x, out, n, relu_forward<float>);                                                            \
  }                                                                                                        \
  template <>                                                                                              \
  void relu_backward<S>(const S* dout, const S* out, S* dx, std::int64_t n) {                              \
    half_binary(dout, out, dx, n, relu_backward<float>);                                                   \
  }                                                                                                        \
  template <>                                                                                              \
  void sigmoid_forward<S>(const S* x, S* out, std::int64_t n) {                                            \
    half_unary(x, out, n, sigmoid_forward<float>);                                                         \
  }                                                                                                        \
  template <>                                                                                              \
  void sigmoid_backward<S>(const S* dout, const S* out, S* dx, std::int64_t n) {                           \
    half_binary(dout, out, dx, n, sigmoid_backward<float>);                                                \
  }                                                                                                        \
  template <>                                                                                              \
  void leaky_relu_forward<S>(const S* x, S* out, std::int64_t n, double alpha) {                           \
    half_unary(x, out, n, [alpha](const float* a, float* o, std::int64_t w) {                              \
      leaky_relu_forward<float>(a, o, w, alpha);                                                           \
    });                                                                                                    \
  }                                                                                                        \
  template <>                                                                                              \
  void leaky_relu_backward<S>(const S* dout, const S* out, S* dx, std::int64_t n, double alpha) {          \
    half_binary(dout, out, dx, n, [alpha](const float* d, const float* o, float* r, std::int64_t w) {      \
      leaky_relu_backward<float>(d, o, r, w, alpha);                                                       \
    });                                                                                                    \
  }                                                                                                        \
  template <>                                                                                              \
  void tanh_forward<S>(const S* x, S* out, std::int64_t n) {                                               \
    half_unary(x, out, n, tanh_forward<float>);                                                            \
  }                                                                                                        \
  template <>                                                                                              \
  void tanh_backward<S>(const S* dout, const S* out, S* dx, std::int64_t n) {                              \
    half_binary(dout, out, dx, n, tanh_backward<float>);                                                   \
  }
FC_HALF_TYPES(FC_ACTIVATION_HALF_)
#undef FC_ACTIVATION_HALF_

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_ACTIVATION_INSTANTIATE(T, S)                                                \
  template void relu_forward<T>(const T*, T*, std::int64_t);                      \
  template void relu_backward<T>(const T*, const T*, T*, std::int64_t);           \
  template void sigmoid_forward<T>(const T*, T*, std::int64_t);                   \
  template void sigmoid_backward<T>(const T*, const T*, T*, std::int64_t);          \
  template void leaky_relu_forward<T>(const T*, T*, std::int64_t, double);         \
  template void leaky_relu_backward<T>(const T*, const T*, T*, std::int64_t, double); \
  template void tanh_forward<T>(const T*, T*, std::int64_t);                      \
  template void tanh_backward<T>(const T*, const T*, T*, std::int64_t);
FC_FLOAT_TYPES(FC_ACTIVATION_INSTANTIATE)
#undef FC_ACTIVATION_INSTANTIATE

}  // namespace fastconv::cpu
