// layernorm.cpp: layer normalisation forward and backward on rows (M, D). Row statistics are accumulated in
// double, two passes (mean, then the centred sum of squares: no cancellation). Rows are split across threads
// for the forward pass and dx; dgamma and dbeta are column sums taken by column blocks, each block summing
// the rows in order, so every result has the same bits for any thread count. dx = rstd * (g - mean(g) - xhat
// * mean(g * xhat)) with g = dout * gamma, xhat = (x - mean) * rstd. float16 / bfloat16 compute in float32
// (A = compute_t<T>): loads widened, row statistics in double as for float, column sums in float32, every
// stored value (out, mean, rstd, dx, dgamma, dbeta) rounded once.
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
    using A = compute_t<T>;
    const T* xr = x + m * D;  // x, out are (M, D)
    double s = 0.0;
    for (std::int64_t j = 0; j < D; ++j) s += static_cast<double>(to_compute(xr[j]));
    const double mu = s / static_cast<double>(D);
    double q = 0.0;
    for (std::int64_t j = 0; j < D; ++j) {
      const double c = static_cast<double>(to_compute(xr[j])) - mu;
      q += c * c;
    }
    const A mu_t = static_cast<A>(mu), r = static_cast<A>(1.0 / std::sqrt(q / static_cast<double>(D) + eps));
    mean[m] = from_compute<T>(mu_t);
    rstd[m] = from_compute<T>(r);
    T* o = out + m * D;
    for (std::int64_t j = 0; j < D; ++j)
      o[j] = from_compute<T>((to_compute(xr[j]) - mu_t) * r * to_compute(gamma[j]) + to_compute(beta[j]));
  }
}

template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dout, T* dx,
                        T* dgamma, T* dbeta, std::int64_t M, std::int64_t D) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (M * D >= kParallelMin)
  {
#pragma omp for schedule(static)
    for (std::int64_t m = 0; m < M; ++m) {
      const T* xr = x + m * D;
      const T* g = dout + m * D;
      const A mu = to_compute(mean[m]), rs = to_compute(rstd[m]);
      double sg = 0.0, sgx = 0.0;
      for (std::int64_t j = 0; j < D; ++j) {
        const double gj = static_cast<double>(to_compute(g[j])) * to_compute(gamma[j]);
        sg += gj;
        sgx += gj * static_cast<double>((to_compute(xr[j]) - mu) * rs);
      }
      const A mg = static_cast<A>(sg / static_cast<double>(D));
      const A mgx = static_cast<A>(sgx / static_cast<double>(D));
      T* d = dx + m * D;
      for (std::int64_t j = 0; j < D; ++j) {
        const A xhat = (to_compute(xr[j]) - mu) * rs;
        d[j] = from_compute<T>(rs * (to_compute(g[j]) * to_compute(gamma[j]) - mg - xhat * mgx));
      }
    }
    const std::int64_t blocks = (D + kColBlock - 1) / kColBlock;
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t j0 = b * kColBlock, w = std::min(D, j0 + kColBlock) - j0;
      A sgam[kColBlock], sbet[kColBlock];  // the block's column sums (in order over the rows)
      std::fill(sgam, sgam + w, A(0));
      std::fill(sbet, sbet + w, A(0));
      for (std::int64_t m = 0; m < M; ++m) {
        const A mu = to_compute(mean[m]), rs = to_compute(rstd[m]);
        for (std::int64_t j = 0; j < w; ++j) {
          const A g = to_compute(dout[m * D + j0 + j]);
          sgam[j] += g * ((to_compute(x[m * D + j0 + j]) - mu) * rs);
          sbet[j] += g;
        }
      }
      for (std::int64_t j = 0; j < w; ++j) {
        dgamma[j0 + j] = from_compute<T>(sgam[j]);
        dbeta[j0 + j] = from_compute<T>(sbet[j]);
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
FC_HALF_TYPES(FC_LAYERNORM_INSTANTIATE)
#undef FC_LAYERNORM_INSTANTIATE

}  // namespace fastconv::cpu
