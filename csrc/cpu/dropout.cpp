// dropout.cpp: dropout forward (draw the keep mask, multiply) and backward (multiply by the mask), on
// contiguous 1-D arrays. The draw is a counter-based hash of (seed, index) (common/dropout_hash.h, shared with
// the CUDA kernel), so any split of the index range over threads yields the same mask: results are identical
// for every thread count, and on the GPU.
#include "cpu/dropout.h"

#include <algorithm>
#include <cstdint>

#include "common/dropout_hash.h"
#include "common/dtype.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Below this many elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 15;

// Elements per block of the forward pass (hash loop, then multiply loop).
constexpr std::int64_t kBlock = 1024;

using dropout_hash::draw;
using dropout_hash::stream_key;

}  // namespace

double dropout_uniform(std::uint64_t seed, std::int64_t i) { return draw(stream_key(seed), i); }

// ---------------------------------------------------------------------------------------------------------------
// kernels

// The factor is widened through int32 and loaded into a local before the multiply: written as x * T(keep),
// GCC 12 turns the product into a data-dependent branch (skip the multiply when keep) that mispredicts half
// the time (~9x slower); in this form it stays a vectorised convert-and-multiply. The product itself (not a
// select) keeps NaN * 0 = NaN.
template <typename T>
inline T keep_factor(std::uint8_t m) {
  return static_cast<T>(static_cast<std::int32_t>(m != 0));
}

template <typename T>
void dropout_forward(const T* x, T* out, std::uint8_t* mask, std::int64_t n, double ratio, std::uint64_t seed) {
  const std::uint64_t key = stream_key(seed);
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  // Per block: the (scalar, 64-bit) hash fills the mask, then a vectorised loop multiplies.
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock, w = std::min(kBlock, n - i0);
    std::uint8_t* mb = mask + i0;
    for (std::int64_t j = 0; j < w; ++j) mb[j] = (draw(key, i0 + j) > ratio) ? 1 : 0;
    const T* xb = x + i0;
    T* ob = out + i0;
#pragma omp simd
    for (std::int64_t j = 0; j < w; ++j) {
      // compute_t: float for f16 / bf16 (load-convert-multiply-store; exact, NaN * 0 stays NaN)
      const compute_t<T> f = keep_factor<compute_t<T>>(mb[j]), v = to_compute(xb[j]);
      ob[j] = from_compute<T>(v * f);
    }
  }
}

template <typename T>
void dropout_backward(const T* dout, const std::uint8_t* mask, T* dx, std::int64_t n) {
  // The mask is read as bytes and compared with zero: a bool array from elsewhere may hold other values,
  // and loading such a byte as a C++ bool would be undefined.
  simd_for(n, kParallelMin, [&](std::int64_t i) {
    const compute_t<T> f = keep_factor<compute_t<T>>(mask[i]), v = to_compute(dout[i]);
    dx[i] = from_compute<T>(v * f);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_DROPOUT_INSTANTIATE(T, S)                                                                            \
  template void dropout_forward<T>(const T*, T*, std::uint8_t*, std::int64_t, double, std::uint64_t);      \
  template void dropout_backward<T>(const T*, const std::uint8_t*, T*, std::int64_t);
FC_FLOAT_TYPES(FC_DROPOUT_INSTANTIATE)
FC_HALF_TYPES(FC_DROPOUT_INSTANTIATE)
#undef FC_DROPOUT_INSTANTIATE

}  // namespace fastconv::cpu
