// spatial_batchnorm.cpp: per-channel batch normalisation of x (N, C, HW), training forward, inference forward and
// backward. Training kernels are parallel over channels: one thread owns a channel and walks its N strips of HW
// contiguous values in order, so the statistics have the same bits for any thread count. The moments take one
// pass, summing x - K and (x - K)^2 in double with K the channel's first value (a shifted sum: no cancellation
// when the mean is large next to the spread). Normalisation and dx are computed in double from the double mean
// and invstd, then rounded to T once. Training forward: 2 passes over x; backward: 2 passes over x and dout.
// float16 / bfloat16 are widened per value (to_compute), so their statistics too are summed in double (never
// in 16 bits), and every result is rounded once on the store (from_double).
#include "cpu/spatial_batchnorm.h"

#include <cmath>
#include <cstdint>

#include "common/dtype.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Below this many elements the OpenMP fork/join costs more than the passes themselves.
constexpr std::int64_t kParallelMin = 1 << 14;

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// forward, training

template <typename T>
void spatial_batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                                     T* out, double* mean, double* invstd, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double momentum, double eps) {
  const double M = static_cast<double>(N) * static_cast<double>(HW);
  const std::int64_t CHW = C * HW;

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * CHW >= kParallelMin)
  for (std::int64_t c = 0; c < C; ++c) {
    // pass 1: shifted sums of the channel
    const double K = static_cast<double>(to_compute(x[c * HW]));
    double s1 = 0.0, s2 = 0.0;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xs = x + n * CHW + c * HW;  // x[n, c, :], HW values
#pragma omp simd reduction(+ : s1, s2)
      for (std::int64_t i = 0; i < HW; ++i) {
        const double d = static_cast<double>(to_compute(xs[i])) - K;
        s1 += d;
        s2 += d * d;
      }
    }
    const double dm = s1 / M;
    const double mu = K + dm;
    double var = s2 / M - dm * dm;
    if (var < 0.0) var = 0.0;  // rounding only: a sum of squares about the mean is never negative
    const double is = 1.0 / std::sqrt(var + eps);
    mean[c] = mu;
    invstd[c] = is;
    running_mean[c] = from_double<T>(momentum * static_cast<double>(to_compute(running_mean[c])) + (1.0 - momentum) * mu);
    running_var[c] = from_double<T>(momentum * static_cast<double>(to_compute(running_var[c])) + (1.0 - momentum) * var);

    // pass 2: out = (x - mean) * (gamma * invstd) + beta
    const double a = static_cast<double>(to_compute(gamma[c])) * is, b = static_cast<double>(to_compute(beta[c]));
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xs = x + n * CHW + c * HW;
      T* os = out + n * CHW + c * HW;
#pragma omp simd
      for (std::int64_t i = 0; i < HW; ++i) os[i] = from_double<T>((static_cast<double>(to_compute(xs[i])) - mu) * a + b);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// forward, inference: elementwise with the running statistics, parallel over the N*C planes

template <typename T>
void spatial_batchnorm_forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean,
                                     const T* running_var, T* out, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double eps) {
  const std::int64_t planes = N * C;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (planes * HW >= kParallelMin)
  for (std::int64_t p = 0; p < planes; ++p) {
    const std::int64_t c = p % C;
    const double mu = static_cast<double>(to_compute(running_mean[c]));
    const double a = static_cast<double>(to_compute(gamma[c])) / std::sqrt(static_cast<double>(to_compute(running_var[c])) + eps);
    const double b = static_cast<double>(to_compute(beta[c]));
    const T* xs = x + p * HW;  // plane (n, c) of (N, C, HW)
    T* os = out + p * HW;
#pragma omp simd
    for (std::int64_t i = 0; i < HW; ++i) os[i] = from_double<T>((static_cast<double>(to_compute(xs[i])) - mu) * a + b);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// backward

template <typename T>
void spatial_batchnorm_backward(const T* dout, const T* x, const double* mean, const double* invstd,
                                const T* gamma, T* dx, T* dgamma, T* dbeta, std::int64_t N, std::int64_t C,
                                std::int64_t HW) {
  const double M = static_cast<double>(N) * static_cast<double>(HW);
  const std::int64_t CHW = C * HW;

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * CHW >= kParallelMin)
  for (std::int64_t c = 0; c < C; ++c) {
    const double mu = mean[c], is = invstd[c];
    // pass 1: sum dout and sum dout * (x - mean)
    double sdy = 0.0, sdyx = 0.0;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* ds = dout + n * CHW + c * HW;  // dout[n, c, :]
      const T* xs = x + n * CHW + c * HW;
#pragma omp simd reduction(+ : sdy, sdyx)
      for (std::int64_t i = 0; i < HW; ++i) {
        const double d = static_cast<double>(to_compute(ds[i]));
        sdy += d;
        sdyx += d * (static_cast<double>(to_compute(xs[i])) - mu);
      }
    }
    const double dg = sdyx * is;  // sum dout * xhat
    dbeta[c] = from_double<T>(sdy);
    dgamma[c] = from_double<T>(dg);

    // pass 2: dx = a * dout + k * (x - mean) + b, the formula of the header expanded per channel
    const double a = static_cast<double>(to_compute(gamma[c])) * is;
    const double b = -a * sdy / M, k = -a * is * dg / M;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* ds = dout + n * CHW + c * HW;
      const T* xs = x + n * CHW + c * HW;
      T* xd = dx + n * CHW + c * HW;
#pragma omp simd
      for (std::int64_t i = 0; i < HW; ++i)
        xd[i] = from_double<T>(a * static_cast<double>(to_compute(ds[i])) + k * (static_cast<double>(to_compute(xs[i])) - mu) + b);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_SPATIAL_BN_INSTANTIATE(T, S)                                                                          \
  template void spatial_batchnorm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, double*, double*, \
                                                   std::int64_t, std::int64_t, std::int64_t, double, double); \
  template void spatial_batchnorm_forward_infer<T>(const T*, const T*, const T*, const T*, const T*, T*,       \
                                                   std::int64_t, std::int64_t, std::int64_t, double);         \
  template void spatial_batchnorm_backward<T>(const T*, const T*, const double*, const double*, const T*, T*,  \
                                              T*, T*, std::int64_t, std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_SPATIAL_BN_INSTANTIATE)
FC_HALF_TYPES(FC_SPATIAL_BN_INSTANTIATE)
#undef FC_SPATIAL_BN_INSTANTIATE

}  // namespace fastconv::cpu
