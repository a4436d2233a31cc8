// batchnorm.cpp: batch normalisation forward (train, inference) and backward on x (N, D) row-major with
// per-column statistics. The train and backward kernels are parallel over blocks of kCols columns: each
// column's sums run over all N rows inside one thread, in row order, so the bits do not depend on the thread
// count. Inside a block the loops go row by row (a contiguous kCols-wide strip of each row) for unit stride.
// Sums are accumulated in double and rounded to T where the book's formulas keep a (D,) vector in T.
// Backward makes two passes over the rows (all column sums, then dx) and allocates nothing.
// float16 / bfloat16 compute in float32 (A = compute_t<T>): every load is widened (to_compute), the sums are in
// double as for float, and each stored array (out, xc, xn, std, the running statistics, the gradients) is
// rounded once (from_compute); the (D,) vectors that never leave a block (mu, the variance) stay float32.
#include "cpu/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Columns per block: 64 floats are four cache lines per row strip, wide enough to vectorise and to keep
// neighbouring threads' writes apart, narrow enough that a book-sized D (50-1000) still splits over threads.
constexpr std::int64_t kCols = 64;

// Below this many elements the OpenMP fork/join costs more than the passes themselves.
constexpr std::int64_t kParallelMin = 1 << 14;

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// forward, training: batch statistics, then normalise; updates the running averages in place

template <typename T>
void batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var, T* out,
                             T* xc, T* xn, T* stdev, std::int64_t N, std::int64_t D, double momentum,
                             double eps) {
  const std::int64_t blocks = (D + kCols - 1) / kCols;
  const double inv_n = 1.0 / static_cast<double>(N);
  using A = compute_t<T>;
  const A m = static_cast<A>(momentum), m1 = static_cast<A>(1.0 - momentum), e = static_cast<A>(eps);

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * D >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t j0 = b * kCols, w = std::min(kCols, D - j0);  // columns [j0, j0 + w)
    double acc[kCols];
    A mu[kCols], sd[kCols];

    // pass 1: column sums of x -> mu
    std::fill(acc, acc + w, 0.0);
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * D + j0;  // row n of (N, D), from column j0
#pragma omp simd
      for (std::int64_t j = 0; j < w; ++j) acc[j] += static_cast<double>(to_compute(xr[j]));
    }
    for (std::int64_t j = 0; j < w; ++j) mu[j] = static_cast<A>(acc[j] * inv_n);

    // pass 2: xc = x - mu (stored) and its column sums of squares -> var, std
    std::fill(acc, acc + w, 0.0);
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * D + j0;
      T* cr = xc + n * D + j0;
#pragma omp simd
      for (std::int64_t j = 0; j < w; ++j) {
        const A c = to_compute(xr[j]) - mu[j];
        cr[j] = from_compute<T>(c);
        acc[j] += static_cast<double>(c) * static_cast<double>(c);
      }
    }
    for (std::int64_t j = 0; j < w; ++j) {
      const A var = static_cast<A>(acc[j] * inv_n);
      sd[j] = std::sqrt(var + e);
      stdev[j0 + j] = from_compute<T>(sd[j]);
      running_mean[j0 + j] = from_compute<T>(m * to_compute(running_mean[j0 + j]) + m1 * mu[j]);
      running_var[j0 + j] = from_compute<T>(m * to_compute(running_var[j0 + j]) + m1 * var);
    }

    // pass 3: xn = xc / std, out = gamma * xn + beta (xc was just written; for a book-sized N the strip
    // is still in cache). 16-bit types recompute xc from x: the stored xc is rounded.
    const T* g = gamma + j0;
    const T* bt = beta + j0;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* cr = (is_half_v<T> ? x : xc) + n * D + j0;
      T* nr = xn + n * D + j0;
      T* orow = out + n * D + j0;
#pragma omp simd
      for (std::int64_t j = 0; j < w; ++j) {
        const A c = is_half_v<T> ? to_compute(cr[j]) - mu[j] : to_compute(cr[j]);
        const A v = c / sd[j];
        nr[j] = from_compute<T>(v);
        orow[j] = from_compute<T>(to_compute(g[j]) * v + to_compute(bt[j]));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// forward, inference: running statistics, purely elementwise, so parallel over rows

template <typename T>
void batchnorm_forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean,
                             const T* running_var, T* out, std::int64_t N, std::int64_t D, double eps) {
  using A = compute_t<T>;
  const A e = static_cast<A>(eps);
  // (D,) vectors widened once: gamma, beta, the running mean and std
  std::vector<A> vec(static_cast<std::size_t>(4 * D));
  A *g = vec.data(), *bt = g + D, *mu = bt + D, *s = mu + D;
  for (std::int64_t j = 0; j < D; ++j) {
    g[j] = to_compute(gamma[j]);
    bt[j] = to_compute(beta[j]);
    mu[j] = to_compute(running_mean[j]);
    s[j] = std::sqrt(to_compute(running_var[j]) + e);
  }

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * D >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;  // row n of (N, D)
    T* orow = out + n * D;
#pragma omp simd
    for (std::int64_t j = 0; j < D; ++j)
      orow[j] = from_compute<T>(g[j] * ((to_compute(xr[j]) - mu[j]) / s[j]) + bt[j]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// backward

template <typename T>
void batchnorm_backward(const T* dout, const T* xc, const T* xn, const T* stdev, const T* gamma, T* dx,
                        T* dgamma, T* dbeta, std::int64_t N, std::int64_t D) {
  const std::int64_t blocks = (D + kCols - 1) / kCols;
  using A = compute_t<T>;
  const A Nt = static_cast<A>(N), c2 = static_cast<A>(2.0 / static_cast<double>(N));

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * D >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t j0 = b * kCols, w = std::min(kCols, D - j0);  // columns [j0, j0 + w)
    double s_beta[kCols], s_gamma[kCols], s_std[kCols], s_dxc[kCols], s_xc[kCols];
    A g[kCols], sd[kCols], sd2[kCols], dvar[kCols], dmu_n[kCols];
    std::fill(s_beta, s_beta + w, 0.0);
    std::fill(s_gamma, s_gamma + w, 0.0);
    std::fill(s_std, s_std + w, 0.0);
    std::fill(s_dxc, s_dxc + w, 0.0);
    std::fill(s_xc, s_xc + w, 0.0);
    for (std::int64_t j = 0; j < w; ++j) {
      g[j] = to_compute(gamma[j0 + j]);
      sd[j] = to_compute(stdev[j0 + j]);
      sd2[j] = sd[j] * sd[j];
    }

    // pass 1: every column sum. dmu = sum_n dxc needs dvar, itself a column sum, so it is split as
    // sum_n (dxn/std) + (2/N) * dvar * sum_n xc, both parts summed here.
    for (std::int64_t n = 0; n < N; ++n) {
      const T* dr = dout + n * D + j0;  // row n of (N, D), from column j0
      const T* cr = xc + n * D + j0;
      const T* nr = xn + n * D + j0;
#pragma omp simd
      for (std::int64_t j = 0; j < w; ++j) {
        const A d = to_compute(dr[j]), c = to_compute(cr[j]);
        const A dxn = g[j] * d;
        s_beta[j] += static_cast<double>(d);
        s_gamma[j] += static_cast<double>(to_compute(nr[j]) * d);
        s_std[j] += static_cast<double>((dxn * c) / sd2[j]);
        s_dxc[j] += static_cast<double>(dxn / sd[j]);
        s_xc[j] += static_cast<double>(c);
      }
    }
    for (std::int64_t j = 0; j < w; ++j) {
      dbeta[j0 + j] = from_double<T>(s_beta[j]);
      dgamma[j0 + j] = from_double<T>(s_gamma[j]);
      const A dstd = -static_cast<A>(s_std[j]);
      dvar[j] = (A(0.5) * dstd) / sd[j];
      const double dmu = s_dxc[j] + static_cast<double>(c2) * static_cast<double>(dvar[j]) * s_xc[j];
      dmu_n[j] = static_cast<A>(dmu) / Nt;
    }

    // pass 2: dx = dxn/std + (2/N)*xc*dvar - dmu/N
    for (std::int64_t n = 0; n < N; ++n) {
      const T* dr = dout + n * D + j0;
      const T* cr = xc + n * D + j0;
      T* xr = dx + n * D + j0;
#pragma omp simd
      for (std::int64_t j = 0; j < w; ++j) {
        const A dxc = (g[j] * to_compute(dr[j])) / sd[j] + (c2 * to_compute(cr[j])) * dvar[j];
        xr[j] = from_compute<T>(dxc - dmu_n[j]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_BATCHNORM_INSTANTIATE(T, S)                                                                              \
  template void batchnorm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, std::int64_t, \
                                           std::int64_t, double, double);                                      \
  template void batchnorm_forward_infer<T>(const T*, const T*, const T*, const T*, const T*, T*, std::int64_t, \
                                           std::int64_t, double);                                              \
  template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,            \
                                      std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_BATCHNORM_INSTANTIATE)
FC_HALF_TYPES(FC_BATCHNORM_INSTANTIATE)
#undef FC_BATCHNORM_INSTANTIATE

}  // namespace fastconv::cpu
