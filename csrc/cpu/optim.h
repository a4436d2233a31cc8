// optim.h: fused in-place optimizer updates, one pass over a parameter p, its gradient g and its state, all
// contiguous 1-D arrays of length n in the parameter's dtype (the caller passes ravelled views). p, g and each
// state array must not overlap (the kernels are declared __restrict__; the bindings check it).
// The formulas, and the order of their roundings, are those of fastconv.reference.optimizer (the book's
// common/optimizer.py plus Adadelta); every double scalar is rounded to T once, as NumPy rounds a Python
// float operand. With weight_decay != 0 the gradient used is g + weight_decay * p (L2).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// p -= lr * g
template <typename T>
void sgd_update(T* p, const T* g, std::int64_t n, double lr, double weight_decay);

// v = v*momentum - lr*g; p += v
template <typename T>
void momentum_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);

// the book's Nesterov: v = v*momentum - lr*g; p += momentum**2 * v; p -= (1 + momentum)*lr * g
template <typename T>
void nesterov_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);

// h += g*g; p -= lr*g / (sqrt(h) + eps)
template <typename T>
void adagrad_update(T* p, const T* g, T* h, std::int64_t n, double lr, double eps, double weight_decay);

// h = h*decay_rate + (1 - decay_rate)*g*g; p -= lr*g / (sqrt(h) + eps)
template <typename T>
void rmsprop_update(T* p, const T* g, T* h, std::int64_t n, double lr, double decay_rate, double eps,
                    double weight_decay);

// the book's Adam (bias correction folded into lr_t by the caller):
// m += (1-beta1)*(g - m); v += (1-beta2)*(g*g - v); p -= lr_t*m / (sqrt(v) + eps)
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, std::int64_t n, double lr_t, double beta1, double beta2,
                 double eps, double weight_decay);

// Adadelta (Zeiler 2012): h = h*rho + (1-rho)*g*g; dx = sqrt(d + eps) / sqrt(h + eps) * g;
// d = d*rho + (1-rho)*dx*dx; p -= lr*dx
template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, std::int64_t n, double lr, double rho, double eps,
                     double weight_decay);

}  // namespace fastconv::cpu
