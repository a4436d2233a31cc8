// time_loss.cpp: softmax + cross-entropy over N*T rows with an ignore label. Parallel over rows; each row is
// computed by one thread, its loss goes to a per-row buffer summed in row order afterwards, so the loss has
// the same bits for any thread count. The exp sums and the losses are accumulated in double; float rows are
// vecmath.h's (exps within 2 ulp of libm, vectorised for the ISA in use). float16 / bfloat16: each row is
// widened into per-thread float32 buffers, runs the float32 row code and its probabilities are rounded once on
// the store.
#include "cpu/time_loss.h"

#include <cmath>
#include <vector>

#include "common/dtype.h"
#include "cpu/half_convert.h"
#include "cpu/threads.h"
#include "cpu/vecmath.h"

namespace fastconv::cpu {

namespace {
constexpr std::int64_t kParallelMin = 1 << 14;
}  // namespace

std::int64_t first_bad_time_label(const std::int64_t* t, std::int64_t M, std::int64_t V,
                                  std::int64_t ignore_label) {
  for (std::int64_t m = 0; m < M; ++m)
    if (t[m] != ignore_label && (t[m] < 0 || t[m] >= V)) return m;
  return -1;
}

namespace {

// One row of V scores xr: its softmax into yr (not xr) and its loss (0 for an ignored label). float rows are
// vecmath.h's (per ISA); double rows libm's exp, summed in order.
inline double softmax_ce_row(const float* xr, float* yr, std::int64_t V, std::int64_t label,
                             std::int64_t ignore_label) {
  const double lse = vecmath().softmax(xr, yr, V);
  return label != ignore_label ? lse - static_cast<double>(xr[label]) : 0.0;
}
inline double softmax_ce_row(const double* xr, double* yr, std::int64_t V, std::int64_t label,
                             std::int64_t ignore_label) {
  double mx = xr[0];
  for (std::int64_t k = 1; k < V; ++k) mx = (xr[k] > mx) ? xr[k] : mx;
  for (std::int64_t k = 0; k < V; ++k) yr[k] = std::exp(xr[k] - mx);
  double s = 0.0;
  for (std::int64_t k = 0; k < V; ++k) s += yr[k];
  for (std::int64_t k = 0; k < V; ++k) yr[k] = yr[k] / s;
  return label != ignore_label ? std::log(s) + mx - xr[label] : 0.0;
}

}  // namespace

template <typename T>
double time_softmax_ce_forward(const T* x, const std::int64_t* t, T* y, std::int64_t M, std::int64_t V,
                               std::int64_t ignore_label, std::int64_t* kept) {
  std::vector<double> row_loss(static_cast<std::size_t>(M), 0.0);
#pragma omp parallel num_threads(num_threads()) if (M * V >= kParallelMin)
  {
    std::vector<float> a(is_half_v<T> ? 2 * V : 0);  // a 16-bit row widened, and its probabilities
#pragma omp for schedule(static)
    for (std::int64_t m = 0; m < M; ++m) {
      // x, y are (M, V)
      if constexpr (is_half_v<T>) {
        widen(x + m * V, a.data(), V);
        row_loss[m] = softmax_ce_row(a.data(), a.data() + V, V, t[m], ignore_label);
        narrow(a.data() + V, y + m * V, V);
      } else {
        row_loss[m] = softmax_ce_row(x + m * V, y + m * V, V, t[m], ignore_label);
      }
    }
  }
  double total = 0.0;
  std::int64_t n = 0;
  for (std::int64_t m = 0; m < M; ++m) {
    total += row_loss[m];
    n += (t[m] != ignore_label);
  }
  *kept = n;
  return total;
}

template <typename T>
void time_softmax_ce_backward(const T* y, const std::int64_t* t, T* dx, std::int64_t M, std::int64_t V,
                              std::int64_t ignore_label, double scale) {
  using A = compute_t<T>;
  const A s = static_cast<A>(scale);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (M * V >= kParallelMin)
  for (std::int64_t m = 0; m < M; ++m) {
    const T* yr = y + m * V;
    T* dr = dx + m * V;
    if (t[m] == ignore_label) {
      for (std::int64_t k = 0; k < V; ++k) dr[k] = T{};
      continue;
    }
    for (std::int64_t k = 0; k < V; ++k) dr[k] = from_compute<T>(to_compute(yr[k]) * s);
    dr[t[m]] = from_compute<T>((to_compute(yr[t[m]]) - A(1)) * s);
  }
}

#define FC_TIME_LOSS_INSTANTIATE(T, S)                                                                      \
  template double time_softmax_ce_forward<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t,  \
                                             std::int64_t, std::int64_t*);                                  \
  template void time_softmax_ce_backward<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t,   \
                                            std::int64_t, double);
FC_FLOAT_TYPES(FC_TIME_LOSS_INSTANTIATE)
FC_HALF_TYPES(FC_TIME_LOSS_INSTANTIATE)
#undef FC_TIME_LOSS_INSTANTIATE

}  // namespace fastconv::cpu
