// loss.cpp: softmax and softmax + cross-entropy error, forward and backward, on (N, K) row-major arrays.
// Parallel over rows; each row's max, sum and loss are computed sequentially by one thread. Per-row losses go
// into a buffer that is then added in row order, so the loss has the same bits for any thread count.
// The exp sum and the losses are accumulated in double (then rounded to T where the reference stays in T).
// Labels are either int64 class indices (N,) or dense (N, K) targets (one-hot or probabilities).
// Elementwise losses (sigmoid + binary cross-entropy, squared error) run on ravelled arrays of n values;
// their sums go block by block (kLossBlock values each, a block's partial in double), then the partials in
// block order, so the loss too is the same for any thread count.
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/dtype.h"
#include "cpu/half_convert.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Below this many elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 14;

// The book's guard against log(0).
constexpr double kLogEps = 1e-7;

// One row: y = exp(x - max) / sum. The max skips NaN, but a NaN anywhere makes the sum NaN, so the whole
// row becomes NaN as with np.max; x and y may be the same row.
template <typename T>
inline void softmax_row(const T* x, T* y, std::int64_t K) {
  T m = x[0];
  for (std::int64_t k = 1; k < K; ++k) m = (x[k] > m) ? x[k] : m;
  double s = 0.0;
  for (std::int64_t k = 0; k < K; ++k) {
    const T e = std::exp(x[k] - m);
    y[k] = e;
    s += static_cast<double>(e);
  }
  const T st = static_cast<T>(s);
  for (std::int64_t k = 0; k < K; ++k) y[k] = y[k] / st;
}

// Sum of per-row values in row order, then -sum / N.
inline double mean_neg(const std::vector<double>& row, std::int64_t N) {
  double s = 0.0;
  for (double v : row) s += v;
  return -s / static_cast<double>(N);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// softmax

template <typename T>
void softmax_forward(const T* x, T* y, std::int64_t N, std::int64_t K) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * K >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) softmax_row(x + n * K, y + n * K, K);
}

std::int64_t first_bad_label(const std::int64_t* t, std::int64_t N, std::int64_t K) {
  for (std::int64_t n = 0; n < N; ++n)
    if (t[n] < 0 || t[n] >= K) return n;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// softmax + cross-entropy, forward

template <typename T>
double softmax_ce_forward_labels(const T* x, const std::int64_t* t, T* y, std::int64_t N, std::int64_t K) {
  std::vector<double> row(static_cast<std::size_t>(N));
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * K >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    T* yn = y + n * K;  // row n of (N, K)
    softmax_row(x + n * K, yn, K);
    const std::int64_t lab = t[n];
    row[n] = (lab >= 0 && lab < K) ? std::log(static_cast<double>(yn[lab]) + kLogEps)
                                   : std::numeric_limits<double>::quiet_NaN();
  }
  return mean_neg(row, N);
}

template <typename T>
double softmax_ce_forward_dense(const T* x, const T* t, T* y, std::int64_t N, std::int64_t K) {
  std::vector<double> row(static_cast<std::size_t>(N));
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * K >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    T* yn = y + n * K;  // row n of (N, K)
    const T* tn = t + n * K;
    softmax_row(x + n * K, yn, K);
    double s = 0.0;
    for (std::int64_t k = 0; k < K; ++k)
      s += static_cast<double>(tn[k]) * std::log(static_cast<double>(yn[k]) + kLogEps);
    row[n] = s;
  }
  return mean_neg(row, N);
}

// ---------------------------------------------------------------------------------------------------------------
// softmax + cross-entropy, backward (the reference's order of operations, in T: (v / N) * dout)

template <typename T>
void softmax_ce_backward_labels(const T* y, const std::int64_t* t, T* dx, std::int64_t N, std::int64_t K,
                                double dout) {
  const T Nt = static_cast<T>(N), d = static_cast<T>(dout);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * K >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* yn = y + n * K;  // row n of (N, K)
    T* dn = dx + n * K;
    const std::int64_t lab = t[n];
    const bool ok = lab >= 0 && lab < K;
    // Read y[n, lab] before the row is written: dx may be y (in-place backward).
    const T v_lab = ok ? yn[lab] - T(1) : T(0);
#pragma omp simd
    for (std::int64_t k = 0; k < K; ++k) dn[k] = (yn[k] / Nt) * d;
    if (ok) dn[lab] = (v_lab / Nt) * d;
  }
}

template <typename T>
void softmax_ce_backward_dense(const T* y, const T* t, T* dx, std::int64_t N, std::int64_t K, double dout) {
  const T Nt = static_cast<T>(N), d = static_cast<T>(dout);
  const std::int64_t NK = N * K;
  simd_for(NK, kParallelMin, [&](std::int64_t i) { dx[i] = ((y[i] - t[i]) / Nt) * d; });
}

// ---------------------------------------------------------------------------------------------------------------
// f16 / bf16: each row widened into a per-thread float buffer, the float formulas above, one rounding on the store.
// The loss is taken from the float probabilities (before they are rounded), in double as for float32.

namespace {

template <typename S, typename F>
void half_rows(std::int64_t N, std::int64_t K, F&& f) {
#pragma omp parallel num_threads(num_threads()) if (N * K >= kParallelMin)
  {
    std::vector<float> a(static_cast<std::size_t>(K)), b(static_cast<std::size_t>(K));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) f(n, a.data(), b.data());
  }
}

}  // namespace

#define FC_LOSS_HALF_(S, SUF)                                                                                   \
  template <>                                                                                                   \
  void softmax_forward<S>(const S* x, S* y, std::int64_t N, std::int64_t K) {                                   \
    half_rows<S>(N, K, [&](std::int64_t n, float* a, float*) {                                                  \
      widen(x + n * K, a, K);                                                                                   \
      softmax_row(a, a, K);                                                                                     \
      narrow(a, y + n * K, K);                                                                                  \
    });                                                                                                         \
  }                                                                                                             \
  template <>                                                                                                   \
  double softmax_ce_forward_labels<S>(const S* x, const std::int64_t* t, S* y, std::int64_t N, std::int64_t K) { \
    std::vector<double> row(static_cast<std::size_t>(N));                                                       \
    half_rows<S>(N, K, [&](std::int64_t n, float* a, float*) {                                                  \
      widen(x + n * K, a, K);                                                                                   \
      softmax_row(a, a, K);                                                                                     \
      const std::int64_t lab = t[n];                                                                            \
      row[n] = (lab >= 0 && lab < K) ? std::log(static_cast<double>(a[lab]) + kLogEps)                          \
                                     : std::numeric_limits<double>::quiet_NaN();                                \
      narrow(a, y + n * K, K);                                                                                  \
    });                                                                                                         \
    return mean_neg(row, N);                                                                                    \
  }                                                                                                             \
  template <>                                                                                                   \
  double softmax_ce_forward_dense<S>(const S* x, const S* t, S* y, std::int64_t N, std::int64_t K) {            \
    std::vector<double> row(static_cast<std::size_t>(N));                                                       \
    half_rows<S>(N, K, [&](std::int64_t n, float* a, float* b) {                                                \
      widen(x + n * K, a, K);                                                                                   \
      widen(t + n * K, b, K);                                                                                   \
      softmax_row(a, a, K);                                                                                     \
      double s = 0.0;                                                                                           \
      for (std::int64_t k = 0; k < K; ++k)                                                                      \
        s += static_cast<double>(b[k]) * std::log(static_cast<double>(a[k]) + kLogEps);                         \
      row[n] = s;                                                                                               \
      narrow(a, y + n * K, K);                                                                                  \
    });                                                                                                         \
    return mean_neg(row, N);                                                                                    \
  }                                                                                                             \
  template <>                                                                                                   \
  void softmax_ce_backward_labels<S>(const S* y, const std::int64_t* t, S* dx, std::int64_t N, std::int64_t K,  \
                                     double dout) {                                                             \
    const float Nt = static_cast<float>(N), d = static_cast<float>(dout);                                       \
    half_rows<S>(N, K, [&](std::int64_t n, float* a, float*) {                                                  \
      widen(y + n * K, a, K); /* before dx is written: dx may be y */                                           \
      const std::int64_t lab = t[n];                                                                            \
      if (lab >= 0 && lab < K) a[lab] -= 1.0f;                                                                  \
      for (std::int64_t k = 0; k < K; ++k) a[k] = (a[k] / Nt) * d;                                              \
      narrow(a, dx + n * K, K);                                                                                 \
    });                                                                                                         \
  }                                                                                                             \
  template <>                                                                                                   \
  void softmax_ce_backward_dense<S>(const S* y, const S* t, S* dx, std::int64_t N, std::int64_t K, double dout) { \
    const float Nt = static_cast<float>(N), d = static_cast<float>(dout);                                       \
    half_rows<S>(N, K, [&](std::int64_t n, float* a, float* b) {                                                \
      widen(y + n * K, a, K);                                                                                   \
      widen(t + n * K, b, K);                                                                                   \
      for (std::int64_t k = 0; k < K; ++k) a[k] = ((a[k] - b[k]) / Nt) * d;                                     \
      narrow(a, dx + n * K, K);                                                                                 \
    });                                                                                                         \
  }
FC_HALF_TYPES(FC_LOSS_HALF_)
#undef FC_LOSS_HALF_

// ---------------------------------------------------------------------------------------------------------------
// elementwise losses: sigmoid + binary cross-entropy on logits, mean squared error

namespace {

// Values per partial sum of the elementwise losses (fixed, so the summation order is too).
constexpr std::int64_t kLossBlock = 4096;

// sum_i f(i) over [0, n) in double, block partials added in block order.
template <typename F>
double blocked_sum(std::int64_t n, F f) {
  const std::int64_t blocks = (n + kLossBlock - 1) / kLossBlock;
  std::vector<double> part(static_cast<std::size_t>(blocks));
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i1 = std::min(n, (b + 1) * kLossBlock);
    double s = 0.0;
    for (std::int64_t i = b * kLossBlock; i < i1; ++i) s += f(i);
    part[b] = s;
  }
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

}  // namespace

template <typename T>
double sigmoid_bce_forward(const T* x, const T* t, T* y, std::int64_t n) {
  // Per element, with e = exp(-|x|) (never overflows): loss = max(x, 0) - x*t + log1p(e), which is
  // -t*log(sigmoid(x)) - (1-t)*log(1 - sigmoid(x)) rearranged; y = sigmoid(x) in the same piecewise form as
  // sigmoid_forward, kept for the backward.
  const double sum = blocked_sum(n, [&](std::int64_t i) {
    const double v = static_cast<double>(to_compute(x[i]));
    const double e = std::exp(-std::fabs(v));
    y[i] = from_double<T>((v >= 0.0 ? 1.0 : e) / (1.0 + e));
    return (v > 0.0 ? v : 0.0) - v * static_cast<double>(to_compute(t[i])) + std::log1p(e);
  });
  return sum / static_cast<double>(n);
}

template <typename T>
void sigmoid_bce_backward(const T* y, const T* t, T* dx, std::int64_t n, double dout) {
  const compute_t<T> k = static_cast<compute_t<T>>(dout / static_cast<double>(n));
  simd_for(n, kParallelMin,
           [&](std::int64_t i) { dx[i] = from_compute<T>((to_compute(y[i]) - to_compute(t[i])) * k); });
}

template <typename T>
double mse_forward(const T* y, const T* t, std::int64_t n) {
  const double sum = blocked_sum(n, [&](std::int64_t i) {
    const double d = static_cast<double>(to_compute(y[i])) - static_cast<double>(to_compute(t[i]));
    return d * d;
  });
  return sum / static_cast<double>(n);
}

template <typename T>
void mse_backward(const T* y, const T* t, T* dx, std::int64_t n, double dout) {
  const compute_t<T> k = static_cast<compute_t<T>>(2.0 * dout / static_cast<double>(n));
  simd_for(n, kParallelMin,
           [&](std::int64_t i) { dx[i] = from_compute<T>((to_compute(y[i]) - to_compute(t[i])) * k); });
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_LOSS_INSTANTIATE(T, S)                                                                                   \
  template void softmax_forward<T>(const T*, T*, std::int64_t, std::int64_t);                                  \
  template double softmax_ce_forward_labels<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t); \
  template double softmax_ce_forward_dense<T>(const T*, const T*, T*, std::int64_t, std::int64_t);             \
  template void softmax_ce_backward_labels<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t,    \
                                              double);                                                         \
  template void softmax_ce_backward_dense<T>(const T*, const T*, T*, std::int64_t, std::int64_t, double);     \
  template double sigmoid_bce_forward<T>(const T*, const T*, T*, std::int64_t);                                \
  template void sigmoid_bce_backward<T>(const T*, const T*, T*, std::int64_t, double);                         \
  template double mse_forward<T>(const T*, const T*, std::int64_t);                                            \
  template void mse_backward<T>(const T*, const T*, T*, std::int64_t, double);
FC_FLOAT_TYPES(FC_LOSS_INSTANTIATE)
#undef FC_LOSS_INSTANTIATE

// The elementwise losses for float16 / bfloat16: the templates above widen each value (to_compute), sum in
// double and round once on the store (the softmax family has its own staged rows, FC_LOSS_HALF_).
#define FC_LOSS_ELEMENTWISE_INSTANTIATE(T, S)                                             \
  template double sigmoid_bce_forward<T>(const T*, const T*, T*, std::int64_t);        \
  template void sigmoid_bce_backward<T>(const T*, const T*, T*, std::int64_t, double); \
  template double mse_forward<T>(const T*, const T*, std::int64_t);                    \
  template void mse_backward<T>(const T*, const T*, T*, std::int64_t, double);
FC_HALF_TYPES(FC_LOSS_ELEMENTWISE_INSTANTIATE)
#undef FC_LOSS_ELEMENTWISE_INSTANTIATE

}  // namespace fastconv::cpu
