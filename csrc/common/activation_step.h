// activation_step.h: the activations' per-element formulas, written once for the CPU kernels (cpu/activation.cpp,
// and the ReLU fused into the convolution's write-back) and the CUDA kernels (cuda/activation.cu), so that both
// backends give the same bits.
#pragma once

#include "common/hd.h"

namespace fastconv {

// (v <= 0) ? 0 : v: NaN fails the test and passes through, as the book's out[x <= 0] = 0; -0.0 becomes +0.0.
template <typename T>
FC_HD T relu_value(T v) {
  return v <= T(0) ? T(0) : v;
}

// ReLU backward from the forward output: the book's mask x <= 0 is out <= 0.
template <typename T>
FC_HD T relu_grad(T dout, T out) {
  return out <= T(0) ? T(0) : dout;
}

// The sigmoid of v given e = exp(-|v|), which is exp(-v) for v >= 0 and exp(v) below, bit for bit: the piecewise
// form 1 / (1 + e^-v) / e^v / (1 + e^v) with one exp, never overflowing. NaN stays NaN.
template <typename T>
FC_HD T sigmoid_value(T v, T e) {
  return ((v >= T(0)) ? T(1) : e) / (T(1) + e);
}

template <typename T>
FC_HD T sigmoid_grad(T dout, T out) {
  return (dout * (T(1) - out)) * out;
}

// (v <= 0) ? alpha * v : v, the test of relu_value.
template <typename T>
FC_HD T leaky_relu_value(T v, T alpha) {
  return v <= T(0) ? alpha * v : v;
}

// With alpha >= 0 the output has the sign of the input, so the mask v <= 0 is read from out <= 0.
template <typename T>
FC_HD T leaky_relu_grad(T dout, T out, T alpha) {
  return out <= T(0) ? alpha * dout : dout;
}

template <typename T>
FC_HD T tanh_grad(T dout, T out) {
  return dout * (T(1) - out * out);
}

}  // namespace fastconv
