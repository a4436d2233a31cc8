// upsample.cpp: nearest and bilinear upsampling by integer factors (sh, sw), forward and backward, on P = N*C
// planes of H x W (outputs (H*sh) x (W*sw)). Every kernel is parallel over planes: a thread reads and writes
// whole planes, so the backward scatter never races and its sums have one order for any thread count.
// Bilinear follows torch's align_corners=False: output index o maps to src = (o + 0.5) / s - 0.5, clamped at 0;
// taps i0 = floor(src) and i1 = min(i0 + 1, size - 1), weights 1 - (src - i0) and src - i0. The taps and weights
// of each output row and column are tabulated once per call (they do not depend on the plane).
// float16 / bfloat16: nearest copies their bits; the sums and blends run in float32 (compute_t), the bilinear
// backward scatters into a per-thread float32 plane, and each result is rounded once when it is stored.
#include "cpu/upsample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "cpu/half_convert.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {

// Below this many output elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 15;

// The two input taps of one output index along an axis and their weights.
template <typename T>
struct Tap {
  std::int64_t i0, i1;
  T w0, w1;
};

template <typename T>
std::vector<Tap<T>> taps(std::int64_t in, std::int64_t scale) {
  std::vector<Tap<T>> t(static_cast<std::size_t>(in * scale));
  for (std::int64_t o = 0; o < in * scale; ++o) {
    double src = (static_cast<double>(o) + 0.5) / static_cast<double>(scale) - 0.5;
    if (src < 0.0) src = 0.0;
    const std::int64_t i0 = std::min(static_cast<std::int64_t>(src), in - 1);
    const std::int64_t i1 = std::min(i0 + 1, in - 1);
    const double l1 = src - static_cast<double>(i0);
    t[o] = Tap<T>{i0, i1, static_cast<T>(1.0 - l1), static_cast<T>(l1)};
  }
  return t;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// nearest

template <typename T>
void upsample_nearest_forward(const T* x, T* out, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t sh,
                              std::int64_t sw) {
  const std::int64_t OH = H * sh, OW = W * sw;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * OH * OW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T* xs = x + p * H * W;  // plane p of (P, H, W)
    T* os = out + p * OH * OW;    // plane p of (P, OH, OW)
    for (std::int64_t h = 0; h < H; ++h) {
      // build output row h*sh once, then copy it to the sh - 1 rows below
      T* row = os + h * sh * OW;
      for (std::int64_t w = 0; w < W; ++w) std::fill(row + w * sw, row + (w + 1) * sw, xs[h * W + w]);
      for (std::int64_t r = 1; r < sh; ++r) std::copy(row, row + OW, row + r * OW);
    }
  }
}

template <typename T>
void upsample_nearest_backward(const T* dout, T* dx, std::int64_t P, std::int64_t H, std::int64_t W,
                               std::int64_t sh, std::int64_t sw) {
  const std::int64_t OH = H * sh, OW = W * sw;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * OH * OW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T* ds = dout + p * OH * OW;  // plane p of (P, OH, OW)
    T* xs = dx + p * H * W;            // plane p of (P, H, W)
    for (std::int64_t h = 0; h < H; ++h) {
      const T* db = ds + h * sh * OW;  // the sh output rows of input row h
      for (std::int64_t w = 0; w < W; ++w) {
        // rows in order, then the sw columns of each block in order: one summation order
        compute_t<T> s = 0;
        for (std::int64_t r = 0; r < sh; ++r)
          for (std::int64_t c = 0; c < sw; ++c) s += to_compute(db[r * OW + w * sw + c]);
        xs[h * W + w] = from_compute<T>(s);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// bilinear

template <typename T>
void upsample_bilinear_forward(const T* x, T* out, std::int64_t P, std::int64_t H, std::int64_t W,
                               std::int64_t sh, std::int64_t sw) {
  const std::int64_t OH = H * sh, OW = W * sw;
  using A = compute_t<T>;
  const std::vector<Tap<A>> th = taps<A>(H, sh), tw = taps<A>(W, sw);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (P * OH * OW >= kParallelMin)
  for (std::int64_t p = 0; p < P; ++p) {
    const T* xs = x + p * H * W;
    T* os = out + p * OH * OW;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const Tap<A>& a = th[oh];
      const T* r0 = xs + a.i0 * W;  // the two input rows this output row blends
      const T* r1 = xs + a.i1 * W;
      T* orow = os + oh * OW;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const Tap<A>& b = tw[ow];
        const A top = b.w0 * to_compute(r0[b.i0]) + b.w1 * to_compute(r0[b.i1]);
        const A bottom = b.w0 * to_compute(r1[b.i0]) + b.w1 * to_compute(r1[b.i1]);
        orow[ow] = from_compute<T>(a.w0 * top + a.w1 * bottom);
      }
    }
  }
}

template <typename T>
void upsample_bilinear_backward(const T* dout, T* dx, std::int64_t P, std::int64_t H, std::int64_t W,
                                std::int64_t sh, std::int64_t sw) {
  const std::int64_t OH = H * sh, OW = W * sw;
  using A = compute_t<T>;
  const std::vector<Tap<A>> th = taps<A>(H, sh), tw = taps<A>(W, sw);
#pragma omp parallel num_threads(num_threads()) if (P * OH * OW >= kParallelMin)
  {
    std::vector<A> acc(is_half_v<T> ? H * W : 0);
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < P; ++p) {
      const T* ds = dout + p * OH * OW;
      A* xs;  // the sums of plane p: dx itself for float / double
      if constexpr (is_half_v<T>) xs = acc.data();
      else xs = dx + p * H * W;
      std::fill(xs, xs + H * W, A(0));
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        const Tap<A>& a = th[oh];
        A* r0 = xs + a.i0 * W;
        A* r1 = xs + a.i1 * W;
        const T* drow = ds + oh * OW;
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          const Tap<A>& b = tw[ow];
          const A d = to_compute(drow[ow]);
          const A g0 = a.w0 * d, g1 = a.w1 * d;
          r0[b.i0] += b.w0 * g0;
          r0[b.i1] += b.w1 * g0;
          r1[b.i0] += b.w0 * g1;
          r1[b.i1] += b.w1 * g1;
        }
      }
      if constexpr (is_half_v<T>) store_row(xs, dx + p * H * W, H * W);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_UPSAMPLE_INSTANTIATE(T, S)                                                                          \
  template void upsample_nearest_forward<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t,            \
                                            std::int64_t, std::int64_t);                                       \
  template void upsample_nearest_backward<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t,           \
                                             std::int64_t, std::int64_t);                                      \
  template void upsample_bilinear_forward<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t,           \
                                             std::int64_t, std::int64_t);                                      \
  template void upsample_bilinear_backward<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t,          \
                                              std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_UPSAMPLE_INSTANTIATE)
FC_HALF_TYPES(FC_UPSAMPLE_INSTANTIATE)
#undef FC_UPSAMPLE_INSTANTIATE

}  // namespace fastconv::cpu
