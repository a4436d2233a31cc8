// pool.cpp: max and average pooling, forward and backward. x and dx are (N, C, H, W), out / dout / argmax
// are (N, C, OH, OW); argmax is int32 holding ih*W + iw inside the (n, c) plane, or null where the caller
// needs no backward (inference: max pooling then keeps no per-output index).
// Variants: a tight loop for 2x2 stride-2 pad-0 windows (the book's Pooling; such windows never touch
// padding), and a general path per output row: windows clamped to the plane at the border columns (padding is
// never read), and for the interior columns one vectorised sweep over the row per window position.
// Every kernel is parallel over the N*C planes: a plane is read once and written by one thread, so the
// backward scatter of overlapping windows never races and its sums have one order whatever the thread count.
#include "cpu/pool.h"

#include <algorithm>
#include <cstdint>

#include "common/dtype.h"
#include "common/shapes.h"
#include "cpu/threads.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

// Below this many input elements the OpenMP fork/join costs more than the pass itself.
constexpr std::int64_t kParallelMin = 1 << 15;

// Does v replace the current best? Strictly greater keeps the first of equal values (np.argmax); a NaN
// replaces a non-NaN best and then nothing replaces it (np.max / np.argmax return the first NaN).
template <typename T>
inline bool beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// The window of output (oh, ow) clamped to the plane: rows [h0, h1), columns [w0, w1). check_geom's
// preconditions (pad < pool size, H + 2*pad >= pool size) make it non-empty.
struct Window {
  std::int64_t h0, h1, w0, w1;
};

inline Window clamp_window(std::int64_t oh, std::int64_t ow, const ConvGeom& g) {
  const std::int64_t hs = oh * g.sh - g.pt, ws = ow * g.sw - g.pl;
  return Window{std::max<std::int64_t>(hs, 0), std::min(hs + g.FH, g.H), std::max<std::int64_t>(ws, 0),
                std::min(ws + g.FW, g.W)};
}

// What every kernel loops over: planes (n, c) of HW input and OHW output values, split across threads when
// there are enough of them; fast: the 2x2 stride-2 pad-0 windows of the book's Pooling, which never touch
// padding. area: the divisor of average pooling (padding counts as zeros).
struct Planes {
  std::int64_t count, HW, OHW;
  bool parallel, fast;
};

inline Planes planes_of(const ConvGeom& g) {
  const std::int64_t count = g.N * g.C, HW = g.H * g.W;
  return Planes{count, HW, g.OH * g.OW, count * HW >= kParallelMin,
                g.FH == 2 && g.FW == 2 && g.sh == 2 && g.sw == 2 && g.pt == 0 && g.pb == 0 && g.pl == 0 &&
                    g.pr == 0};
}

template <typename T>
inline T area_of(const ConvGeom& g) {
  return static_cast<T>(g.FH * g.FW);
}

// Output columns [lo, hi) whose windows lie wholly inside the plane horizontally (ow*sw - pl >= 0 and
// ow*sw - pl + pool_w <= W); the columns outside it touch the padding and take the clamped scalar path.
struct Interior {
  std::int64_t lo, hi;
};

inline Interior interior_cols(const ConvGeom& g) {
  const std::int64_t W = g.W, OW = g.OW, pool_w = g.FW, stride = g.sw, pad = g.pl;
  const std::int64_t lo = std::min(pad / stride + (pad % stride != 0), OW);  // ceil(pad / stride), no overflow
  const std::int64_t hi = (W + pad - pool_w < 0) ? 0 : std::min(OW, (W + pad - pool_w) / stride + 1);
  return Interior{lo, std::max(lo, hi)};
}

// Max of one clamped window in row-major order: (value, flat index in the plane).
template <typename T>
inline void max_window(const T* xp, std::int64_t W, const Window& w, T* best_out, std::int32_t* idx_out) {
  std::int64_t best_i = w.h0 * W + w.w0;
  T best = xp[best_i];
  for (std::int64_t ih = w.h0; ih < w.h1; ++ih) {
    const T* row = xp + ih * W;
    for (std::int64_t iw = w.w0; iw < w.w1; ++iw) {
      const T v = row[iw];
      const bool take = beats(v, best);
      best = take ? v : best;
      best_i = take ? ih * W + iw : best_i;
    }
  }
  *best_out = best;
  *idx_out = static_cast<std::int32_t>(best_i);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// max pooling

template <typename T>
void maxpool_forward(const T* x, T* out, std::int32_t* argmax, const ConvGeom& g) {
  const Planes pl = planes_of(g);
  const std::int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW, HW = pl.HW, OHW = pl.OHW;

#pragma omp parallel num_threads(num_threads()) if (pl.parallel)
  {
    // without argmax (inference), each thread's winners go to one plane of scratch that is never read
    Scratch<std::int32_t> sink(argmax ? 0 : static_cast<std::size_t>(OHW));
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < pl.count; ++p) {
      const T* xp = x + p * HW;  // (H, W) plane
      T* op = out + p * OHW;     // (OH, OW) plane
      std::int32_t* ap = argmax ? argmax + p * OHW : sink.data();
      if (pl.fast) {
        // Two input rows make one output row; the four candidates are compared in row-major window order.
        for (std::int64_t oh = 0; oh < OH; ++oh) {
          const T* r0 = xp + 2 * oh * W;
          const T* r1 = r0 + W;
          const std::int32_t base = static_cast<std::int32_t>(2 * oh * W);
          for (std::int64_t ow = 0; ow < OW; ++ow) {
            const std::int64_t iw = 2 * ow;
            T m = r0[iw];
            std::int32_t k = base + static_cast<std::int32_t>(iw);
            if (beats(r0[iw + 1], m)) { m = r0[iw + 1]; k = base + static_cast<std::int32_t>(iw + 1); }
            if (beats(r1[iw], m)) { m = r1[iw]; k = base + static_cast<std::int32_t>(W + iw); }
            if (beats(r1[iw + 1], m)) { m = r1[iw + 1]; k = base + static_cast<std::int32_t>(W + iw + 1); }
            op[oh * OW + ow] = m;
            ap[oh * OW + ow] = k;
          }
        }
        continue;
      }
      // General windows, one output row at a time. Border columns go through the clamped scalar window; the
      // interior columns are swept once per window position (ih, j) in row-major order, each sweep a
      // branch-free, vectorisable compare-and-select over the output row. Every output still sees its inputs
      // in row-major window order, so ties and NaN resolve exactly as in the scalar loop.
      const Interior in = interior_cols(g);
      const std::int64_t pool_h = g.FH, pool_w = g.FW, stride = g.sw, pad = g.pl;
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        T* orow = op + oh * OW;  // output row oh of (OH, OW)
        std::int32_t* arow = ap + oh * OW;
        auto border = [&](std::int64_t ow) { max_window(xp, W, clamp_window(oh, ow, g), &orow[ow], &arow[ow]); };
        for (std::int64_t ow = 0; ow < in.lo; ++ow) border(ow);
        for (std::int64_t ow = in.hi; ow < OW; ++ow) border(ow);
        if (in.lo == in.hi) continue;
        const std::int64_t hs = oh * g.sh - g.pt;
        const std::int64_t h0 = std::max<std::int64_t>(hs, 0), h1 = std::min(hs + pool_h, H);
        for (std::int64_t ow = in.lo; ow < in.hi; ++ow) {
          orow[ow] = xp[h0 * W + ow * stride - pad];
          arow[ow] = static_cast<std::int32_t>(h0 * W + ow * stride - pad);
        }
        for (std::int64_t ih = h0; ih < h1; ++ih) {
          for (std::int64_t j = (ih == h0) ? 1 : 0; j < pool_w; ++j) {
            const std::int64_t base = ih * W + j - pad;  // (ih, ow*sw - pl + j) is xp[base + ow*sw]
#pragma omp simd
            for (std::int64_t ow = in.lo; ow < in.hi; ++ow) {
              const T v = xp[base + ow * stride], b = orow[ow];
              const bool take = beats(v, b);
              orow[ow] = take ? v : b;
              arow[ow] = take ? static_cast<std::int32_t>(base + ow * stride) : arow[ow];
            }
          }
        }
      }
    }
  }
}

template <typename T>
std::int64_t maxpool_backward(const T* dout, const std::int32_t* argmax, T* dx, const ConvGeom& g) {
  const Planes pl = planes_of(g);
  const std::int64_t HW = pl.HW, OHW = pl.OHW;
  std::int64_t first_bad = INT64_MAX;

  // Zeroing the plane and scattering into it touches only that plane, which stays in L1/L2 for the book's
  // sizes, so this is still one pass over dx in memory. Out-of-range indices are skipped and reported.
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (pl.parallel) reduction(min : first_bad)
  for (std::int64_t p = 0; p < pl.count; ++p) {
    T* dxp = dx + p * HW;  // (H, W) plane
    const T* dp = dout + p * OHW;
    const std::int32_t* ap = argmax + p * OHW;
    std::fill(dxp, dxp + HW, T(0));
    for (std::int64_t o = 0; o < OHW; ++o) {
      const std::int64_t a = ap[o];
      if (static_cast<std::uint64_t>(a) >= static_cast<std::uint64_t>(HW)) {  // also catches a < 0
        first_bad = std::min(first_bad, p * OHW + o);
        continue;
      }
      dxp[a] += dp[o];
    }
  }
  return first_bad == INT64_MAX ? -1 : first_bad;
}

// ---------------------------------------------------------------------------------------------------------------
// average pooling (count_include_pad: always divide by pool_h * pool_w)

template <typename T>
void avgpool_forward(const T* x, T* out, const ConvGeom& g) {
  const Planes pl = planes_of(g);
  const std::int64_t W = g.W, OH = g.OH, OW = g.OW;
  const T area = area_of<T>(g);

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (pl.parallel)
  for (std::int64_t p = 0; p < pl.count; ++p) {
    const T* xp = x + p * pl.HW;  // (H, W) plane
    T* op = out + p * pl.OHW;     // (OH, OW) plane
    if (pl.fast) {
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        const T* r0 = xp + 2 * oh * W;
        const T* r1 = r0 + W;
#pragma omp simd
        for (std::int64_t ow = 0; ow < OW; ++ow)
          op[oh * OW + ow] = (((r0[2 * ow] + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) / area;
      }
      continue;
    }
    // As in max pooling: clamped scalar windows at the border columns, vectorised sweeps over the interior
    // columns. Both add a window's real positions to 0 in row-major order.
    const Interior in = interior_cols(g);
    const std::int64_t H = g.H, pool_h = g.FH, pool_w = g.FW, stride = g.sw, pad = g.pl;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      T* orow = op + oh * OW;  // output row oh of (OH, OW)
      auto border = [&](std::int64_t ow) {
        const Window w = clamp_window(oh, ow, g);
        T s = T(0);
        for (std::int64_t ih = w.h0; ih < w.h1; ++ih)
          for (std::int64_t iw = w.w0; iw < w.w1; ++iw) s += xp[ih * W + iw];
        orow[ow] = s / area;
      };
      for (std::int64_t ow = 0; ow < in.lo; ++ow) border(ow);
      for (std::int64_t ow = in.hi; ow < OW; ++ow) border(ow);
      if (in.lo == in.hi) continue;
      const std::int64_t hs = oh * g.sh - g.pt;
      const std::int64_t h0 = std::max<std::int64_t>(hs, 0), h1 = std::min(hs + pool_h, H);
      std::fill(orow + in.lo, orow + in.hi, T(0));
      for (std::int64_t ih = h0; ih < h1; ++ih) {
        for (std::int64_t j = 0; j < pool_w; ++j) {
          const std::int64_t base = ih * W + j - pad;  // (ih, ow*sw - pl + j) is xp[base + ow*sw]
#pragma omp simd
          for (std::int64_t ow = in.lo; ow < in.hi; ++ow) orow[ow] += xp[base + ow * stride];
        }
      }
#pragma omp simd
      for (std::int64_t ow = in.lo; ow < in.hi; ++ow) orow[ow] = orow[ow] / area;
    }
  }
}

template <typename T>
void avgpool_backward(const T* dout, T* dx, const ConvGeom& g) {
  const Planes pl = planes_of(g);
  const std::int64_t W = g.W, OH = g.OH, OW = g.OW, HW = pl.HW;
  const T area = area_of<T>(g);

#pragma omp parallel for schedule(static) num_threads(num_threads()) if (pl.parallel)
  for (std::int64_t p = 0; p < pl.count; ++p) {
    T* dxp = dx + p * HW;  // (H, W) plane
    const T* dp = dout + p * pl.OHW;
    // Positions no window covers (the last row when H is odd under 2x2 stride 2, or gaps when stride > pool)
    // stay zero.
    std::fill(dxp, dxp + HW, T(0));
    if (pl.fast) {
      // 2x2 stride-2 windows tile the plane without overlap: plain stores.
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        T* r0 = dxp + 2 * oh * W;
        T* r1 = r0 + W;
#pragma omp simd
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          const T d = dp[oh * OW + ow] / area;
          r0[2 * ow] = d;
          r0[2 * ow + 1] = d;
          r1[2 * ow] = d;
          r1[2 * ow + 1] = d;
        }
      }
      continue;
    }
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const Window w = clamp_window(oh, ow, g);
        const T d = dp[oh * OW + ow] / area;
        for (std::int64_t ih = w.h0; ih < w.h1; ++ih)
          for (std::int64_t iw = w.w0; iw < w.w1; ++iw) dxp[ih * W + iw] += d;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_POOL_INSTANTIATE(T, S)                                                                       \
  template void maxpool_forward<T>(const T*, T*, std::int32_t*, const ConvGeom&);                       \
  template std::int64_t maxpool_backward<T>(const T*, const std::int32_t*, T*, const ConvGeom&);        \
  template void avgpool_forward<T>(const T*, T*, const ConvGeom&);                                      \
  template void avgpool_backward<T>(const T*, T*, const ConvGeom&);
FC_FLOAT_TYPES(FC_POOL_INSTANTIATE)
#undef FC_POOL_INSTANTIATE

}  // namespace fastconv::cpu
