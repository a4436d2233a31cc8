// loss.h: softmax and softmax + cross-entropy (the book's SoftmaxWithLoss), forward and backward.
// x, y, dx are (N, K) row-major; labels t are int64 (N,), dense targets t are (N, K) of the same dtype.
// Losses are accumulated in double, row by row in row order, so they do not depend on the thread count.
#pragma once
#include <cstdint>

#include "common/dtype.h"

namespace fastconv::cpu {

// y = exp(x - rowmax) / rowsum
template <typename T>
void softmax_forward(const T* x, T* y, std::int64_t N, std::int64_t K);

// -1 if every t[n] is in [0, K), else the first n where it is not. Callers check before the kernels below.
std::int64_t first_bad_label(const std::int64_t* t, std::int64_t N, std::int64_t K);

// y = softmax(x); returns -(sum_n log(y[n, t[n]] + 1e-7)) / N. A label outside [0, K) is never read
// through: its row contributes NaN.
template <typename T>
double softmax_ce_forward_labels(const T* x, const std::int64_t* t, T* y, std::int64_t N, std::int64_t K);

// y = softmax(x); returns -(sum_n sum_k t[n, k] * log(y[n, k] + 1e-7)) / N.
template <typename T>
double softmax_ce_forward_dense(const T* x, const T* t, T* y, std::int64_t N, std::int64_t K);

// dx = ((y - onehot(t)) / N) * dout, in T. A label outside [0, K) is skipped (its row gets no -1).
template <typename T>
void softmax_ce_backward_labels(const T* y, const std::int64_t* t, T* dx, std::int64_t N, std::int64_t K,
                                double dout);

// dx = ((y - t) / N) * dout, in T.
template <typename T>
void softmax_ce_backward_dense(const T* y, const T* t, T* dx, std::int64_t N, std::int64_t K, double dout);

// Sigmoid + binary cross-entropy on logits x against targets t, both n values (ravelled): y = sigmoid(x);
// returns mean_i [max(x, 0) - x*t + log(1 + exp(-|x|))] (stable for any x), the mean over all n values.
template <typename T>
double sigmoid_bce_forward(const T* x, const T* t, T* y, std::int64_t n);

// dx = (y - t) * (dout / n), in T.
template <typename T>
void sigmoid_bce_backward(const T* y, const T* t, T* dx, std::int64_t n, double dout);

// Returns mean_i (y - t)^2 over all n values (double accumulation).
template <typename T>
double mse_forward(const T* y, const T* t, std::int64_t n);

// dx = (y - t) * (2 * dout / n), in T.
template <typename T>
void mse_backward(const T* y, const T* t, T* dx, std::int64_t n, double dout);

// f16 / bf16 (loss.cpp): softmax and softmax + cross-entropy per row in float32, one rounding on the store.
#define FC_LOSS_HALF_DECL_(S, SUF)                                                                                \
  template <> void softmax_forward<S>(const S*, S*, std::int64_t, std::int64_t);                                  \
  template <> double softmax_ce_forward_labels<S>(const S*, const std::int64_t*, S*, std::int64_t, std::int64_t); \
  template <> double softmax_ce_forward_dense<S>(const S*, const S*, S*, std::int64_t, std::int64_t);             \
  template <> void softmax_ce_backward_labels<S>(const S*, const std::int64_t*, S*, std::int64_t, std::int64_t,   \
                                                 double);                                                         \
  template <> void softmax_ce_backward_dense<S>(const S*, const S*, S*, std::int64_t, std::int64_t, double);
FC_HALF_TYPES(FC_LOSS_HALF_DECL_)
#undef FC_LOSS_HALF_DECL_

}  // namespace fastconv::cpu
