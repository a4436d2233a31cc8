// spatial_batchnorm_kernels.h: the kernels of spatial_batchnorm.h, compiled once per variant into namespace
// FC_SBN_NS: spatial_batchnorm.cpp builds them for baseline x86-64 (or any CPU) as sbn_base,
// spatial_batchnorm_avx2.cpp with -mavx2 as sbn_avx2. Both are built with -ffp-contract=off and every sum is
// taken in kLanes interleaved partial sums added in one fixed order, so the vector width changes no bit: the two
// variants give the same results (tests/test_spatial_batchnorm.py compares them), and one thread owns a channel,
// so the thread count changes none either.
//
// Per channel: the moments take one pass, summing x - K and (x - K)^2 in double with K the channel's first value
// (a shifted sum: no cancellation when the mean is large next to the spread). Normalisation and dx are computed
// in double from the double mean and invstd, then rounded to T once. Training forward: 2 passes over x; backward:
// 2 passes over x and dout. float16 / bfloat16 are widened per value (to_compute), so their statistics too are
// summed in double (never in 16 bits), and every result is rounded once on the store (from_double).
#pragma once
#include <cmath>
#include <cstdint>
#include <utility>

#include "common/dtype.h"
#include "cpu/threads.h"

#ifndef FC_SBN_NS
#error "define FC_SBN_NS (the variant's namespace) before including spatial_batchnorm_kernels.h"
#endif

namespace fastconv::cpu::FC_SBN_NS {

namespace {

// Below this many elements the OpenMP fork/join costs more than the passes themselves.
constexpr std::int64_t kParallelMin = 1 << 14;
// Partial sums per reduction: a multiple of every variant's vector width in doubles (2, 4), added pairwise
constexpr int kLanes = 8;

template <typename T>
inline double wide(T v) {
  return static_cast<double>(to_compute(v));
}

// s[l] += p and t[l] += q with (p, q) = f(i), for i = l, l + kLanes, ... of [0, n); the tail (n % kLanes
// values) goes to lanes 0, 1, ...
template <typename F>
inline void lane_sums(std::int64_t n, double* s, double* t, F f) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const auto [p, q] = f(i + l);
      s[l] += p;
      t[l] += q;
    }
  for (int l = 0; i < n; ++i, ++l) {
    const auto [p, q] = f(i);
    s[l] += p;
    t[l] += q;
  }
}

inline double lanes_total(const double* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

}  // namespace

template <typename T>
void forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var, T* out,
                   double* mean, double* invstd, std::int64_t N, std::int64_t C, std::int64_t HW, double momentum,
                   double eps) {
  const double M = static_cast<double>(N) * static_cast<double>(HW);
  const std::int64_t CHW = C * HW;

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * CHW >= kParallelMin)
  for (std::int64_t c = 0; c < C; ++c) {
    // pass 1: shifted sums of the channel
    const double K = wide(x[c * HW]);
    double s1[kLanes] = {}, s2[kLanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xs = x + n * CHW + c * HW;  // x[n, c, :], HW values
      lane_sums(HW, s1, s2, [&](std::int64_t i) {
        const double d = wide(xs[i]) - K;
        return std::pair<double, double>(d, d * d);
      });
    }
    const double dm = lanes_total(s1) / M;
    const double mu = K + dm;
    double var = lanes_total(s2) / M - dm * dm;
    if (var < 0.0) var = 0.0;  // rounding only: a sum of squares about the mean is never negative
    const double is = 1.0 / std::sqrt(var + eps);
    mean[c] = mu;
    invstd[c] = is;
    running_mean[c] = from_double<T>(momentum * wide(running_mean[c]) + (1.0 - momentum) * mu);
    running_var[c] = from_double<T>(momentum * wide(running_var[c]) + (1.0 - momentum) * var);

    // pass 2: out = (x - mean) * (gamma * invstd) + beta
    const double a = wide(gamma[c]) * is, b = wide(beta[c]);
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xs = x + n * CHW + c * HW;
      T* os = out + n * CHW + c * HW;
#pragma omp simd
      for (std::int64_t i = 0; i < HW; ++i) os[i] = from_double<T>((wide(xs[i]) - mu) * a + b);
    }
  }
}

// elementwise with the running statistics, parallel over the N*C planes
template <typename T>
void forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var, T* out,
                   std::int64_t N, std::int64_t C, std::int64_t HW, double eps) {
  const std::int64_t planes = N * C;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (planes * HW >= kParallelMin)
  for (std::int64_t p = 0; p < planes; ++p) {
    const std::int64_t c = p % C;
    const double mu = wide(running_mean[c]);
    const double a = wide(gamma[c]) / std::sqrt(wide(running_var[c]) + eps);
    const double b = wide(beta[c]);
    const T* xs = x + p * HW;  // plane (n, c) of (N, C, HW)
    T* os = out + p * HW;
#pragma omp simd
    for (std::int64_t i = 0; i < HW; ++i) os[i] = from_double<T>((wide(xs[i]) - mu) * a + b);
  }
}

template <typename T>
void backward(const T* dout, const T* x, const double* mean, const double* invstd, const T* gamma, T* dx,
              T* dgamma, T* dbeta, std::int64_t N, std::int64_t C, std::int64_t HW) {
  const double M = static_cast<double>(N) * static_cast<double>(HW);
  const std::int64_t CHW = C * HW;

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * CHW >= kParallelMin)
  for (std::int64_t c = 0; c < C; ++c) {
    const double mu = mean[c], is = invstd[c];
    // pass 1: sum dout and sum dout * (x - mean)
    double sdy[kLanes] = {}, sdyx[kLanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* ds = dout + n * CHW + c * HW;  // dout[n, c, :]
      const T* xs = x + n * CHW + c * HW;
      lane_sums(HW, sdy, sdyx, [&](std::int64_t i) {
        const double d = wide(ds[i]);
        return std::pair<double, double>(d, d * (wide(xs[i]) - mu));
      });
    }
    const double sy = lanes_total(sdy);
    const double dg = lanes_total(sdyx) * is;  // sum dout * xhat
    dbeta[c] = from_double<T>(sy);
    dgamma[c] = from_double<T>(dg);

    // pass 2: dx = a * dout + k * (x - mean) + b, the formula of the header expanded per channel
    const double a = wide(gamma[c]) * is;
    const double b = -a * sy / M, k = -a * is * dg / M;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* ds = dout + n * CHW + c * HW;
      const T* xs = x + n * CHW + c * HW;
      T* xd = dx + n * CHW + c * HW;
#pragma omp simd
      for (std::int64_t i = 0; i < HW; ++i) xd[i] = from_double<T>(a * wide(ds[i]) + k * (wide(xs[i]) - mu) + b);
    }
  }
}

}  // namespace fastconv::cpu::FC_SBN_NS
