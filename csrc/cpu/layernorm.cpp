// layernorm.cpp: layer normalisation forward and backward on rows (M, D). Row statistics are accumulated in
// double, two passes (mean, then the centred sum of squares: no cancellation). Rows are split across threads
// for the forward pass and dx; dgamma and dbeta are column sums taken by column blocks, each block summing
// the rows in order, so every result has the same bits for any thread count. dx = rstd * (g - mean(g) - xhat
// * mean(g * xhat)) with g = dout * gamma, xhat = (x - mean) * rstd.
#include "cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/dtype.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {
constexpr std::int64_t kParallelMin = 1 << 14;
constexpr std::int64_t kColBlock = 64;
}  // namespace

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* out, T* mean, T* rstd, std::int64_t M,
                       std::int64_t D, double eps) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (M * D >= kParallelMin)
  for (std::int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * D;  // x, out are (M, D)
    double s = 0.0;
    for (std::int64_t j = 0; j < D; ++j) s += static_cast<double>(xr[j]);
    const double mu = s / static_cast<double>(D);
    double q = 0.0;
    for (std::int64_t j = 0; j < D; ++j) {
      const double c = static_cast<double>(xr[j]) - mu;
      q += c * c;
    }
    const T mu_t = static_cast<T>(mu), r = static_cast<T>(1.0 / std::sqrt(q / static_cast<double>(D) + eps));
    mean[m] = mu_t;
    rstd[m] = r;
    T* o = out + m * D;
    for (std::int64_t j = 0; j < D; ++j) o[j] = (xr[j] - mu_t) * r * gamma[j] + beta[j];
  }
}

template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dout, T* dx,
                        T* dgamma, T* dbeta, std::int64_t M, std::int64_t D) {
#pragma omp parallel num_threads(num_threads()) if (M * D >= kParallelMin)
  {
#pragma omp for schedule(static)
    for (std::int64_t m = 0; m < M; ++m) {
      const T* xr = x + m * D;
      const T* g = dout + m * D;
      double sg = 0.0, sgx = 0.0;
      for (std::int64_t j = 0; j < D; ++j) {
        const double gj = static_cast<double>(g[j]) * gamma[j];
        sg += gj;
        sgx += gj * static_cast<double>((xr[j] - mean[m]) * rstd[m]);
      }
      const T mg = static_cast<T>(sg / static_cast<double>(D));
      const T mgx = static_cast<T>(sgx / static_cast<double>(D));
      T* d = dx + m * D;
      for (std::int64_t j = 0; j < D; ++j) {
        const T xhat = (xr[j] - mean[m]) * rstd[m];
        d[j] = rstd[m] * (g[j] * gamma[j] - mg - xhat * mgx);
      }
    }
    const std::int64_t blocks = (D + kColBlock - 1) / kColBlock;
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t j0 = b * kColBlock, j1 = std::min(D, j0 + kColBlock);
      std::fill(dgamma + j0, dgamma + j1, T(0));
      std::fill(dbeta + j0, dbeta + j1, T(0));
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t j = j0; j < j1; ++j) {
          const T g = dout[m * D + j];
          dgamma[j] += g * ((x[m * D + j] - mean[m]) * rstd[m]);
          dbeta[j] += g;
        }
    }
  }
}

#define FC_LAYERNORM_INSTANTIATE(T, S)                                                                       \
  template void layernorm_forward<T>(const T*, const T*, const T*, T*, T*, T*, std::int64_t, std::int64_t,   \
                                     double);                                                                \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,          \
                                      std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_LAYERNORM_INSTANTIATE)
#undef FC_LAYERNORM_INSTANTIATE

}  // namespace fastconv::cpu
