// global_pool.cpp: global average and max pooling over each (n, c) plane of x (N, C, H, W), forward and
// backward. Every kernel is parallel over the P = N*C planes; one thread reads or writes a whole plane, so sums
// have one order whatever the thread count. Average sums in double; max keeps the first of equal values and the
// first NaN, as np.max / np.argmax. float16 / bfloat16 are widened per value (to_compute) and rounded once on the
// store; the max and its backward move the 16-bit values unchanged.
#include "cpu/global_pool.h"

#include <algorithm>
#include <cstdint>

#include "common/dtype.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Below this many plane elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 15;

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// average

template <typename T>
void global_avgpool_forward(const T* x, T* out, std::int64_t P, std::int64_t HW) {
  const double inv = 1.0 / static_cast<double>(HW);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * HW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T* xs = x + p * HW;  // plane p of (P, HW)
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = 0; i < HW; ++i) s += static_cast<double>(to_compute(xs[i]));
    out[p] = from_double<T>(s * inv);
  }
}

template <typename T>
void global_avgpool_backward(const T* dout, T* dx, std::int64_t P, std::int64_t HW) {
  const double inv = 1.0 / static_cast<double>(HW);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * HW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T g = from_double<T>(static_cast<double>(to_compute(dout[p])) * inv);
    std::fill(dx + p * HW, dx + (p + 1) * HW, g);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// max

template <typename T>
void global_maxpool_forward(const T* x, T* out, std::int64_t* argmax, std::int64_t P, std::int64_t HW) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * HW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T* xs = x + p * HW;
    auto best = to_compute(xs[0]);
    std::int64_t at = 0;
    // strictly greater keeps the first of equal values; a NaN wins once and then nothing replaces it
    if (best == best) {
      for (std::int64_t i = 1; i < HW; ++i) {
        const auto v = to_compute(xs[i]);
        if (v > best) {
          best = v;
          at = i;
        } else if (v != v) {
          best = v;
          at = i;
          break;
        }
      }
    }
    out[p] = xs[at];  // the input value itself (exact in every type)
    argmax[p] = at;
  }
}

template <typename T>
std::int64_t global_maxpool_backward(const T* dout, const std::int64_t* argmax, T* dx, std::int64_t P,
                                     std::int64_t HW) {
  std::int64_t bad = -1;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * HW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    T* xs = dx + p * HW;
    std::fill(xs, xs + HW, T{});
    const std::int64_t a = argmax[p];
    if (a >= 0 && a < HW) {
      xs[a] = dout[p];
    } else {
#pragma omp critical(fc_global_maxpool_bad)
      if (bad < 0 || p < bad) bad = p;
    }
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_GLOBAL_POOL_INSTANTIATE(T, S)                                                                 \
  template void global_avgpool_forward<T>(const T*, T*, std::int64_t, std::int64_t);                     \
  template void global_avgpool_backward<T>(const T*, T*, std::int64_t, std::int64_t);                    \
  template void global_maxpool_forward<T>(const T*, T*, std::int64_t*, std::int64_t, std::int64_t);      \
  template std::int64_t global_maxpool_backward<T>(const T*, const std::int64_t*, T*, std::int64_t,      \
                                                   std::int64_t);
FC_FLOAT_TYPES(FC_GLOBAL_POOL_INSTANTIATE)
FC_HALF_TYPES(FC_GLOBAL_POOL_INSTANTIATE)
#undef FC_GLOBAL_POOL_INSTANTIATE

}  // namespace fastconv::cpu
