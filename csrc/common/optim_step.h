// optim_step.h: the optimizers' per-element updates, written once for the CPU kernels (cpu/optim_kernels.h, built
// per ISA) and the CUDA kernels (cuda/optim.cu). Each optimizer is a struct holding its scalars, rounded to T once as
// NumPy rounds a Python float operand (make), and a step that updates one element of p and of its state in the
// NumPy reference's order of operations and roundings (fastconv.reference.optimizer), so that every backend and
// ISA gives the reference's bits as long as the compiler neither contracts a*b+c into an FMA (-ffp-contract=off,
// nvcc --fmad=false) nor reorders (no -ffast-math). With WD the gradient used is g + wd * p (L2).
//
// Everything here is in an anonymous namespace on purpose: the CPU includes this header in translation units
// compiled with different instruction sets (baseline and AVX2), and a function with external linkage would be one
// COMDAT the linker may take from either, running AVX2 code on a CPU without it. Internal linkage keeps one copy
// per translation unit.
#pragma once
#include <cmath>

#include "common/hd.h"

namespace fastconv::optim_step {
namespace {

template <bool WD, typename T>
FC_HD T grad(T g, T p, T wd) {
  if constexpr (WD) {
    return g + wd * p;
  } else {
    return g;
  }
}

// p -= lr * g
template <typename T>
struct Sgd {
  T lr, wd;
  static Sgd make(double lr, double wd) { return {T(lr), T(wd)}; }
  template <bool WD>
  FC_HD void step(T& p, T g) const {
    const T gi = grad<WD>(g, p, wd);
    p = p - lr * gi;
  }
};

// v = v * momentum - lr * g; p += v
template <typename T>
struct Momentum {
  T lr, mu, wd;
  static Momentum make(double lr, double momentum, double wd) { return {T(lr), T(momentum), T(wd)}; }
  template <bool WD>
  FC_HD void step(T& p, T g, T& v) const {
    const T gi = grad<WD>(g, p, wd);
    const T vi = v * mu - lr * gi;  // v *= momentum; v -= lr * g
    v = vi;
    p = p + vi;
  }
};

// the book's form: v = v * momentum - lr * g; p += momentum**2 * v; p -= (1 + momentum) * lr * g
template <typename T>
struct Nesterov {
  T lr, mu, mu2, c, wd;
  static Nesterov make(double lr, double momentum, double wd) {
    return {T(lr), T(momentum), T(momentum * momentum), T((1.0 + momentum) * lr), T(wd)};
  }
  template <bool WD>
  FC_HD void step(T& p, T g, T& v) const {
    const T gi = grad<WD>(g, p, wd);
    const T vi = v * mu - lr * gi;
    v = vi;
    const T pi = p + mu2 * vi;  // two separate in-place steps in the reference
    p = pi - c * gi;
  }
};

// h += g * g; p -= lr * g / (sqrt(h) + eps)
template <typename T>
struct AdaGrad {
  T lr, eps, wd;
  static AdaGrad make(double lr, double eps, double wd) { return {T(lr), T(eps), T(wd)}; }
  template <bool WD>
  FC_HD void step(T& p, T g, T& h) const {
    const T gi = grad<WD>(g, p, wd);
    const T hi = h + gi * gi;
    h = hi;
    p = p - (lr * gi) / (std::sqrt(hi) + eps);  // lr * g / (sqrt(h) + eps), left to right
  }
};

// h = h * decay_rate + (1 - decay_rate) * g * g; p -= lr * g / (sqrt(h) + eps)
template <typename T>
struct RMSprop {
  T lr, rho, c, eps, wd;
  static RMSprop make(double lr, double decay_rate, double eps, double wd) {
    return {T(lr), T(decay_rate), T(1.0 - decay_rate), T(eps), T(wd)};
  }
  template <bool WD>
  FC_HD void step(T& p, T g, T& h) const {
    const T gi = grad<WD>(g, p, wd);
    const T hi = h * rho + (c * gi) * gi;  // h *= rho; h += (1 - rho) * g * g
    h = hi;
    p = p - (lr * gi) / (std::sqrt(hi) + eps);
  }
};

// the book's form, bias correction folded into lr_t by the caller:
// m += (1 - beta1) * (g - m); v += (1 - beta2) * (g * g - v); p -= lr_t * m / (sqrt(v) + eps)
template <typename T>
struct Adam {
  T lr_t, c1, c2, eps, wd;
  static Adam make(double lr_t, double beta1, double beta2, double eps, double wd) {
    return {T(lr_t), T(1.0 - beta1), T(1.0 - beta2), T(eps), T(wd)};
  }
  template <bool WD>
  FC_HD void step(T& p, T g, T& m, T& v) const {
    const T gi = grad<WD>(g, p, wd);
    const T mi = m + c1 * (gi - m);
    const T vi = v + c2 * (gi * gi - v);
    m = mi;
    v = vi;
    p = p - (lr_t * mi) / (std::sqrt(vi) + eps);
  }
};

// Zeiler 2012: h = h * rho + (1 - rho) * g * g; dx = sqrt(d + eps) / sqrt(h + eps) * g;
// d = d * rho + (1 - rho) * dx * dx; p -= lr * dx
template <typename T>
struct Adadelta {
  T lr, rho, c, eps, wd;
  static Adadelta make(double lr, double rho, double eps, double wd) {
    return {T(lr), T(rho), T(1.0 - rho), T(eps), T(wd)};
  }
  template <bool WD>
  FC_HD void step(T& p, T g, T& h, T& d) const {
    const T gi = grad<WD>(g, p, wd);
    const T hi = h * rho + (c * gi) * gi;
    const T dx = (std::sqrt(d + eps) / std::sqrt(hi + eps)) * gi;
    h = hi;
    d = d * rho + (c * dx) * dx;
    p = p - lr * dx;
  }
};

// ---- Keras 3's forms (keras.optimizers), where they differ from the book's, in Keras' order of operations

// SGD(momentum, nesterov=True): v = v * momentum - g * lr; p += v * momentum - g * lr
template <typename T>
struct KerasNesterov {
  T lr, mu, wd;
  static KerasNesterov make(double lr, double momentum, double wd) { return {T(lr), T(momentum), T(wd)}; }
  template <bool WD>
  FC_HD void step(T& p, T g, T& v) const {
    const T gi = grad<WD>(g, p, wd);
    const T vi = v * mu - gi * lr;
    v = vi;
    p = p + (vi * mu - gi * lr);
  }
};

// Adagrad: h += g * g; p -= lr * g / sqrt(h + eps) (epsilon inside the root)
template <typename T>
struct KerasAdagrad {
  T lr, eps, wd;
  static KerasAdagrad make(double lr, double eps, double wd) { return {T(lr), T(eps), T(wd)}; }
  template <bool WD>
  FC_HD void step(T& p, T g, T& h) const {
    const T gi = grad<WD>(g, p, wd);
    const T hi = h + gi * gi;
    h = hi;
    p = p - (lr * gi) / std::sqrt(hi + eps);
  }
};

// RMSprop: h = rho * h + (1 - rho) * (g * g); p -= lr * g / sqrt(h + eps) (epsilon inside the root)
template <typename T>
struct KerasRMSprop {
  T lr, rho, c, eps, wd;
  static KerasRMSprop make(double lr, double rho, double eps, double wd) {
    return {T(lr), T(rho), T(1.0 - rho), T(eps), T(wd)};
  }
  template <bool WD>
  FC_HD void step(T& p, T g, T& h) const {
    const T gi = grad<WD>(g, p, wd);
    const T hi = rho * h + c * (gi * gi);
    h = hi;
    p = p - (lr * gi) / std::sqrt(hi + eps);
  }
};

}  // namespace
}  // namespace fastconv::optim_step
