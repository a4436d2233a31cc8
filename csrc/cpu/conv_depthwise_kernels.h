// conv_depthwise_kernels.h: the depthwise convolution's direct kernels (groups == C), included by one file per
// instruction set (conv_depthwise.cpp: baseline, conv_depthwise_avx2.cpp, conv_depthwise_avx512.cpp), each
// with its own FC_DW_NS, so the same loops are compiled for SSE2, AVX2+FMA and AVX-512 and picked at run time
// from the ISA in use (cpu/isa.h). x (N, C, H, W), w (FN, 1, FH, FW) with FN = C*M (filter f reads channel
// f / M), out / dout (N, FN, OH, OW).
// A GEMM of one row per channel wastes the GEMM's blocking, so these are direct kernels. One filter per channel
// (M == 1, MobileNet's case), up to 64 taps: channels-last blocks (ClBlock) of kLanes channels of one image,
// threads over the N * ceil(C / kLanes) blocks; each output pixel is a vector over the block's channels, each
// tap a vector load; the input gradient the forward of dout with the taps reversed at stride 1 (pads within
// the window, finite weights), else a scatter of vectors. Otherwise plane by plane: threads over the N*FN
// (forward, weight gradient) or N*C (input gradient) planes; strides up to 4 and up to 64 taps on the wide
// grid of a padded plane (WidePath: one contiguous sweep per tap over the whole plane, the plane split into
// phase planes at stride > 1), other geometries row by row, the input gradient a scatter of scaled dout rows
// per tap. The weight gradient is a partial per (image, filter) (per block for ClBlock, each sum in a fixed
// order), summed over the images in order: the same bits on any thread count.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/dtype.h"
#include "common/shapes.h"

#ifndef FC_DW_NS
#error "define FC_DW_NS (the variant's namespace) before including conv_depthwise_kernels.h"
#endif

namespace fastconv::cpu::FC_DW_NS {

using index_t = std::int64_t;

// Everything here has internal linkage: the files that include this header are compiled with different
// instruction sets, and the linker must never pick one file's copy of a helper for another.
namespace {

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
inline index_t min_i(index_t a, index_t b) { return a < b ? a : b; }
inline index_t max_i(index_t a, index_t b) { return a > b ? a : b; }

inline index_t thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Output columns [lo, hi) whose every tap column ow*sw - pl + fw*dw (fw < FW) lies in [0, W).
inline void interior(index_t W, index_t OW, index_t FW, index_t sw, index_t pl, index_t dw, index_t& lo,
                     index_t& hi) {
  lo = min_i(ceil_div(pl, sw), OW);
  const index_t last = W - 1 + pl - (FW - 1) * dw;  // ow*sw <= last
  hi = last < 0 ? lo : max_i(lo, min_i(OW, last / sw + 1));
}

// Taps [lo, hi) of one axis whose input index base + k*dil lies in [0, n).
inline void tap_range(index_t base, index_t n, index_t dil, index_t K, index_t& lo, index_t& hi) {
  lo = base >= 0 ? 0 : ceil_div(-base, dil);
  hi = base > n - 1 ? 0 : min_i(K, (n - 1 - base) / dil + 1);
  if (hi < lo) hi = lo;
}

// Outputs per interior block of a row (fwd_plane): a buffer of OB accumulators stays in L1.
constexpr index_t OB = 128;

template <typename T>
inline T finish(T acc, T bias, bool relu) {
  const T v = acc + bias;
  return relu ? (v <= T(0) ? T(0) : v) : v;  // as relu_value (activation.h): NaN passes
}

// One output plane o (OH, OW) = sum over taps of wf (FH, FW) * the input plane xc (H, W), + bias. KW > 0 fixes
// FW at compile time (the inner tap loop unrolled, so the row loop vectorises plainly); KW == 0: any FW.
template <typename T, int KW>
void fwd_plane(const T* xc, const T* wf, T bias, T* o, const ConvGeom& g, bool relu) {
  const index_t H = g.H, W = g.W, OW = g.OW, FH = g.FH, FW = KW > 0 ? KW : g.FW;
  const index_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, pt = g.pt, pl = g.pl;
  index_t lo, hi;
  interior(W, OW, FW, sw, pl, dw, lo, hi);
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const index_t ih0 = oh * sh - pt;
    index_t fh0, fh1;
    tap_range(ih0, H, dh, FH, fh0, fh1);
    T* orow = o + oh * OW;  // output row oh of (OH, OW)
    auto border = [&](index_t ow) {
      T acc = T(0);
      const index_t iw0 = ow * sw - pl;
      for (index_t fh = fh0; fh < fh1; ++fh) {
        const T* xr = xc + (ih0 + fh * dh) * W;
        for (index_t fw = 0; fw < FW; ++fw) {
          const index_t iw = iw0 + fw * dw;
          if (iw >= 0 && iw < W) acc += wf[fh * FW + fw] * xr[iw];
        }
      }
      orow[ow] = finish(acc, bias, relu);
    };
    for (index_t ow = 0; ow < lo; ++ow) border(ow);
    for (index_t ow = hi; ow < OW; ++ow) border(ow);
    // interior: blocks of up to OB outputs accumulated tap by tap in an L1-resident buffer, each tap one
    // vectorised sweep (an outer-loop-vectorised form with the taps inside did not vectorise with GCC 12)
    const T* x0 = xc + ih0 * W - pl;  // x0[ow*sw + fh*dh*W + fw*dw] is tap (fh, fw) of output ow
    for (index_t ow0 = lo; ow0 < hi; ow0 += OB) {
      const index_t nb = min_i(OB, hi - ow0);
      T acc[OB];
      for (index_t i = 0; i < nb; ++i) acc[i] = T(0);
      for (index_t fh = fh0; fh < fh1; ++fh)
        for (index_t fw = 0; fw < FW; ++fw) {
          const T wv = wf[fh * FW + fw];
          const T* src = x0 + ow0 * sw + fh * dh * W + fw * dw;
          if (sw == 1) {
#pragma omp simd
            for (index_t i = 0; i < nb; ++i) acc[i] += wv * src[i];
          } else {
#pragma omp simd
            for (index_t i = 0; i < nb; ++i) acc[i] += wv * src[i * sw];
          }
        }
#pragma omp simd
      for (index_t i = 0; i < nb; ++i) orow[ow0 + i] = finish(acc[i], bias, relu);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// The wide path. Stride 1: the plane copied into a zero-padded buffer xp (Hp, Wp) and read on a widened grid
// of Wp columns per output row, so that tap (fh, fw) of every output q = oh*Wp + ow is xp[q + fh*dh*Wp +
// fw*dw]: one long contiguous sweep per tap over the whole plane instead of a short one per row (the per-row
// loops above cost more in loop overhead than in arithmetic on 7x7 to 28x28 planes). The Wp - OW extra
// columns of each row are computed and dropped. Stride (sh, sw): the padded plane is split into sh*sw phase
// planes (Hq, Wq) = (ceil(Hp/sh), ceil(Wp/sw)), phase (a, b) holding the padded rows a, a + sh, ... and
// columns b, b + sw, ...; tap (fh, fw) of output (oh, ow) reads padded row oh*sh + fh*dh, which is row
// oh + fh*dh/sh of phase fh*dh % sh (the same for columns), so every tap is again one offset on a grid of Wq
// columns per output row, and the sweep is the stride-1 one (Hq = Hp, Wq = Wp when sh = sw = 1).

// The wide grid is padded to a multiple of kVB values (whole vectors; reads stay inside the scratch).
template <typename T>
constexpr index_t kVB = 256 / sizeof(T);

// Strides up to 4 (at most 16 phase planes), not too many taps for the offsets on the stack.
inline bool wide_ok(const ConvGeom& g) { return g.sh <= 4 && g.sw <= 4 && g.FH * g.FW <= 64; }

// A thread's scratch for the wide path of geometry g (conv_depthwise.cpp: wide_scratch): the phase planes
// (sh*sw of Hq x Wq) and Q zeros after them (the sweeps read up to planes + Q), a wide grid (Q,) (the
// forward's output or the weight gradient's dout) and the mask of valid outputs (Q,). WidePath zeroes it
// all and sets the mask once per thread and loop; each plane then writes only the planes' interior and the
// grid's valid outputs, so the borders, the dropped columns and the tails stay zero (zeroing a one-column
// border row by row cost more than the convolution of a 7x7 plane: small memsets).
struct WideLayout {
  index_t sh, sw, Hq, Wq, HWq, planes, Q;
  WideLayout(const ConvGeom& g, index_t vb)
      : sh(g.sh), sw(g.sw), Hq(ceil_div(g.H + g.pt + g.pb, g.sh)), Wq(ceil_div(g.W + g.pl + g.pr, g.sw)),
        HWq(Hq * Wq), planes(sh * sw * HWq), Q(ceil_div(g.OH * Wq, vb) * vb) {}
  index_t grid() const { return planes + Q; }      // offset of the wide grid
  index_t mask() const { return planes + 2 * Q; }  // offset of the mask
  index_t total() const { return planes + 3 * Q; }
  // the offset of padded position (rh, rw) of output (0, 0): phase plane, then row and column in it
  index_t at(index_t rh, index_t rw) const { return ((rh % sh) * sw + rw % sw) * HWq + rh / sh * Wq + rw / sw; }
};

// The phase planes' interior <- plane xc (H, W): row by row at stride 1, else each input row's columns dealt
// to their column phases.
template <typename T>
void copy_plane(const T* xc, const ConvGeom& g, const WideLayout& lay, T* xp) {
  for (index_t h = 0; h < g.H; ++h) {
    const T* src = xc + h * g.W;
    if (lay.sw == 1) {
      std::memcpy(xp + lay.at(h + g.pt, g.pl), src, static_cast<std::size_t>(g.W) * sizeof(T));
      continue;
    }
    for (index_t w0 = 0; w0 < lay.sw && w0 < g.W; ++w0) {  // columns w0, w0 + sw, ... share a phase
      T* dst = xp + lay.at(h + g.pt, g.pl + w0);
      for (index_t w = w0, c = 0; w < g.W; w += lay.sw, ++c) dst[c] = src[w];
    }
  }
}

// Lanes of one vector of the ISA this file is compiled for (GCC vector extensions: the loops below are written
// in vectors so that they need no auto-vectoriser).
#if defined(__AVX512F__)
template <typename T>
constexpr index_t kLanes = 64 / sizeof(T);
#elif defined(__AVX__)
template <typename T>
constexpr index_t kLanes = 32 / sizeof(T);
#else
template <typename T>
constexpr index_t kLanes = 16 / sizeof(T);
#endif
template <typename T>
struct VecOf {
  typedef T type __attribute__((vector_size(kLanes<T> * sizeof(T))));
};
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
inline Vec<T> load_vec(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// wide (Q = round_up(OH*Wp, VB)) = sum over taps of wf[t] * xp[q + off[t]]: kU vectors of outputs at a time,
// every tap accumulated in registers (kU independent chains; one store per output instead of one load and
// one store per tap), the taps in order (tap 0 a product, then one multiply-add per tap: the same operations
// in the same order as a tap-by-tap sweep). kU * kLanes divides kVB, so Q is whole blocks.
constexpr int kU = 4;
template <typename T>
void wide_sweep(const T* __restrict xp, const index_t* off, const T* wf, index_t KK, index_t Q,
                T* __restrict wide) {
  constexpr index_t L = kLanes<T>;
  static_assert(kVB<T> % (kU * L) == 0, "the wide grid is whole blocks");
  for (index_t q0 = 0; q0 < Q; q0 += kU * L) {
    Vec<T> acc[kU];
    const T* src = xp + off[0] + q0;
#pragma GCC unroll 4
    for (int u = 0; u < kU; ++u) acc[u] = wf[0] * load_vec(src + u * L);
    for (index_t t = 1; t < KK; ++t) {
      const T wv = wf[t];
      src = xp + off[t] + q0;
#pragma GCC unroll 4
      for (int u = 0; u < kU; ++u) acc[u] += wv * load_vec(src + u * L);
    }
#pragma GCC unroll 4
    for (int u = 0; u < kU; ++u) std::memcpy(wide + q0 + u * L, &acc[u], sizeof acc[u]);
  }
}

// Taps per sweep of the weight gradient: a 3x3 filter in one (kTB vector accumulators).
constexpr int kTB = 9;

// One thread's wide path for geometry g: the layout, every tap's offset (computed once: the divisions and
// modulos of WideLayout::at cost more than the sweep of a 7x7 plane) and the thread's scratch ws, zeroed with
// the mask set when constructed (before the thread's first plane).
template <typename T>
class WidePath {
 public:
  WidePath(const ConvGeom& g, T* ws) : g_(g), lay_(g, kVB<T>), KK_(g.FH * g.FW), ws_(ws) {
    for (index_t fh = 0, t = 0; fh < g.FH; ++fh)
      for (index_t fw = 0; fw < g.FW; ++fw, ++t) off_[t] = lay_.at(fh * g.dh, fw * g.dw);
    for (int t = 0; t < kTB; ++t) off_[KK_ + t] = 0;  // the weight gradient's unused taps read the plane
    std::memset(ws, 0, static_cast<std::size_t>(lay_.total()) * sizeof(T));
    T* valid = ws + lay_.mask();
    for (index_t oh = 0; oh < g.OH; ++oh)
      for (index_t ow = 0; ow < g.OW; ++ow) valid[oh * lay_.Wq + ow] = T(1);
  }

  // o (OH, OW) = the taps wf (FH, FW) over the plane xc (H, W), + bias (relu: then max(0, .)).
  void forward(const T* xc, const T* wf, T bias, T* o, bool relu) const {
    // q + off[t] < Q + planes: inside the planes and their Q zeros
    T* wide = ws_ + lay_.grid();
    copy_plane(xc, g_, lay_, ws_);
    wide_sweep(ws_, off_, wf, KK_, lay_.Q, wide);
    for (index_t oh = 0; oh < g_.OH; ++oh) {
      const T* src = wide + oh * lay_.Wq;
      T* dst = o + oh * g_.OW;
#pragma omp simd
      for (index_t ow = 0; ow < g_.OW; ++ow) dst[ow] = finish(src[ow], bias, relu);
    }
  }

  // The weight gradient of one plane on the wide grid: pp[t] = sum over the valid q of dwide[q] * xp[q +
  // off[t]], dout dp (OH, OW) laid out on the grid. The extra columns' products are masked out rather than
  // multiplied by zero, so an inf / NaN the convolution never pairs with dout does not reach dW (as in the
  // reference). Up to kTB taps share one sweep, each with a vector of lane partials (one load of dout and of
  // the mask per kTB products, instead of three loads per product tap by tap); lanes are added in a fixed
  // order (the same bits on any thread count).
  void weight_grad(const T* xc, const T* dp, T* pp) const {
    constexpr index_t L = kLanes<T>;
    static_assert(kVB<T> % kLanes<T> == 0, "the wide grid is whole vectors");
    using V = Vec<T>;
    const T* xp = ws_;
    T* dwide = ws_ + lay_.grid();        // (Q,): dout on the wide grid
    const T* valid = ws_ + lay_.mask();  // (Q,): 1 on the OH x OW outputs, 0 elsewhere
    copy_plane(xc, g_, lay_, ws_);
    for (index_t oh = 0; oh < g_.OH; ++oh)
      std::memcpy(dwide + oh * lay_.Wq, dp + oh * g_.OW, static_cast<std::size_t>(g_.OW) * sizeof(T));
    for (index_t t0 = 0; t0 < KK_; t0 += kTB) {
      V acc[kTB];
#pragma GCC unroll 9
      for (int t = 0; t < kTB; ++t) acc[t] = V{};
      for (index_t q0 = 0; q0 < lay_.Q; q0 += L) {
        const V d = load_vec(dwide + q0);
        const auto in = load_vec(valid + q0) != V{};  // lanes of valid outputs
#pragma GCC unroll 9
        for (int t = 0; t < kTB; ++t) acc[t] += in ? d * load_vec(xp + off_[t0 + t] + q0) : V{};
      }
      for (int t = 0; t < kTB && t0 + t < KK_; ++t) {
        T sum = T(0);
        for (index_t l = 0; l < L; ++l) sum += acc[t][l];
        pp[t0 + t] = sum;
      }
    }
  }

 private:
  const ConvGeom& g_;
  WideLayout lay_;
  index_t KK_;
  T* ws_;
  index_t off_[64 + kTB];
};

// wide: the thread's wide path for g, or null: the row-by-row path.
template <typename T>
void fwd_plane_any(const T* xc, const T* wf, T bias, T* o, const ConvGeom& g, bool relu,
                   const WidePath<T>* wide) {
  if (wide) return wide->forward(xc, wf, bias, o, relu);
  switch (g.FW) {
    case 3: fwd_plane<T, 3>(xc, wf, bias, o, g, relu); break;
    case 5: fwd_plane<T, 5>(xc, wf, bias, o, g, relu); break;
    default: fwd_plane<T, 0>(xc, wf, bias, o, g, relu); break;
  }
}

// dxc (H, W) += the input gradient of one filter's plane: every tap scatter-adds w * dout row into a dx row.
template <typename T>
void dx_scatter_plane(const T* dp, const T* wf, T* dxc, const ConvGeom& g) {
  const index_t H = g.H, W = g.W, OW = g.OW, FH = g.FH, FW = g.FW;
  const index_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw;
  for (index_t oh = 0; oh < g.OH; ++oh) {
    const index_t ih0 = oh * sh - g.pt;
    index_t fh0, fh1;
    tap_range(ih0, H, dh, FH, fh0, fh1);
    const T* drow = dp + oh * OW;
    for (index_t fh = fh0; fh < fh1; ++fh) {
      T* dxr = dxc + (ih0 + fh * dh) * W;
      for (index_t fw = 0; fw < FW; ++fw) {
        const index_t off = fw * dw - g.pl;  // iw = ow*sw + off
        index_t lo, hi;
        tap_range(off, W, sw, OW, lo, hi);
        const T wv = wf[fh * FW + fw];
        if (sw == 1) {
#pragma omp simd
          for (index_t ow = lo; ow < hi; ++ow) dxr[ow + off] += wv * drow[ow];
        } else {
          for (index_t ow = lo; ow < hi; ++ow) dxr[ow * sw + off] += wv * drow[ow];
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// Channels-last blocks (one filter per channel): kLanes channels of one image at a time, transposed into a
// zero-bordered (Hp, Wp, L) block, so that every output pixel is one vector over the block's channels and
// every tap one vector load at a fixed offset, with no per-plane setup: the planar paths above pay theirs for
// each 7x7 or 14x14 plane (MobileNet's deep layers), this one for each block of L channels. The transposes in
// and out cost a copy each. Lanes past the last channel of a ragged last block compute on zeros and are not
// written back.

// In-register transpose of an L x L tile v[0..L) (row i = v[i]): log2(L) stages of paired shuffles, stage s
// swapping the s x s off-diagonal blocks of each 2s x 2s block.
template <typename T>
struct Transposer {
  static constexpr index_t L = kLanes<T>;
  using V = Vec<T>;
  using I = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef I M __attribute__((vector_size(L * sizeof(I))));
  // lane j of the first output takes a[j] or b[j - S], of the second a[j + S] or b[j] (indices into a:b)
  template <index_t S, std::size_t... J>
  static constexpr M lo_mask(std::index_sequence<J...>) {
    return M{static_cast<I>((J & S) == 0 ? J : L + J - S)...};
  }
  template <index_t S, std::size_t... J>
  static constexpr M hi_mask(std::index_sequence<J...>) {
    return M{static_cast<I>((J & S) == 0 ? J + S : L + J)...};
  }
  template <index_t S>
  static void stage(V* v) {
    if constexpr (S < L) {
      constexpr M lo = lo_mask<S>(std::make_index_sequence<L>()), hi = hi_mask<S>(std::make_index_sequence<L>());
      for (index_t i = 0; i < L; ++i)
        if ((i & S) == 0) {
          const V a = v[i], b = v[i + S];
          v[i] = __builtin_shuffle(a, b, lo);
          v[i + S] = __builtin_shuffle(a, b, hi);
        }
      stage<2 * S>(v);
    }
  }
  static void run(V* v) { stage<1>(v); }
};

// Planes -> channels last: dst[off(p) + l] = src[l * stride + p] for pixels p < n and lanes l < nc (lanes past
// nc zero), off(p) = offs[p] or p * L; L pixels at a time through an in-register transpose.
template <typename T>
void to_lanes(const T* src, index_t stride, index_t n, index_t nc, const index_t* offs, T* dst) {
  constexpr index_t L = kLanes<T>;
  using V = Vec<T>;
  V v[L];
  for (index_t p0 = 0; p0 < n; p0 += L) {
    const index_t cnt = n - p0 < L ? n - p0 : L;
    for (index_t l = 0; l < L; ++l) {
      if (l < nc && cnt == L) {
        v[l] = load_vec(src + l * stride + p0);
      } else {
        v[l] = V{};
        if (l < nc) std::memcpy(&v[l], src + l * stride + p0, static_cast<std::size_t>(cnt) * sizeof(T));
      }
    }
    Transposer<T>::run(v);
    for (index_t j = 0; j < cnt; ++j)
      std::memcpy(dst + (offs ? offs[p0 + j] : (p0 + j) * L), &v[j], sizeof(V));
  }
}

// Channels last -> planes: dst[l * stride + p] = src[off(p) + l] + (bias[l] or 0), then relu; p < n, l < nc.
template <typename T>
void from_lanes(const T* src, const index_t* offs, index_t n, index_t nc, T* dst, index_t stride, const T* bias,
                bool relu) {
  constexpr index_t L = kLanes<T>;
  using V = Vec<T>;
  V v[L];
  for (index_t p0 = 0; p0 < n; p0 += L) {
    const index_t cnt = n - p0 < L ? n - p0 : L;
    for (index_t j = 0; j < L; ++j) v[j] = j < cnt ? load_vec(src + (offs ? offs[p0 + j] : (p0 + j) * L)) : V{};
    Transposer<T>::run(v);
    for (index_t l = 0; l < nc; ++l) {
      V r = v[l];
      r = r + (bias ? bias[l] : T(0));  // as finish(): + 0 turns a product's -0.0 into the sum's +0.0
      if (relu) r = r <= V{} ? V{} : r;  // as finish(): NaN passes
      if (cnt == L)
        std::memcpy(dst + l * stride + p0, &r, sizeof r);
      else
        std::memcpy(dst + l * stride + p0, &r, static_cast<std::size_t>(cnt) * sizeof(T));
    }
  }
}

template <typename T>
class ClBlock {
 public:
  static constexpr index_t L = kLanes<T>;
  using V = Vec<T>;

  // values of scratch per thread, for vectors of `lanes` values (kLanes of the widest ISA for the caller that
  // sizes it for every variant)
  // Layout: xt (Hp*Wp pixels, the padded input), dxt (Hp*Wp), yt (P: the outputs or dout), wt (KK).
  static index_t scratch(const ConvGeom& g, index_t lanes) {
    const index_t HpWp = (g.H + g.pt + g.pb) * (g.W + g.pl + g.pr);
    return (2 * HpWp + g.OH * g.OW + g.FH * g.FW) * lanes;
  }

  ClBlock(const ConvGeom& g, T* ws)
      : g_(g), Wp_(g.W + g.pl + g.pr), HpWp_((g.H + g.pt + g.pb) * Wp_), KK_(g.FH * g.FW), xt_(ws),
        dxt_(ws + HpWp_ * L), yt_(dxt_ + HpWp_ * L), wt_(yt_ + g.OH * g.OW * L),
        interior_(static_cast<std::size_t>(g.H * g.W)) {
    for (index_t fh = 0, t = 0; fh < g.FH; ++fh)
      for (index_t fw = 0; fw < g.FW; ++fw, ++t) off_[t] = (fh * g.dh * Wp_ + fw * g.dw) * L;
    for (index_t h = 0, p = 0; h < g.H; ++h)
      for (index_t w = 0; w < g.W; ++w, ++p) interior_[p] = ((h + g.pt) * Wp_ + w + g.pl) * L;
    std::memset(xt_, 0, static_cast<std::size_t>(HpWp_ * L) * sizeof(T));  // the borders stay zero
  }

  // The block's input: channels [0, nc) of planes x (nc, H, W) into the interior; lanes past nc zero.
  void load_input(const T* x, index_t nc) {
    to_lanes(x, g_.H * g_.W, g_.H * g_.W, nc, interior_.data(), xt_);
  }

  // The block's weights: filters w (nc, FH, FW), lanes past nc zero; flip: the taps reversed (the input
  // gradient as the forward of dout). Returns whether every weight is finite.
  bool load_weights(const T* w, index_t nc, bool flip = false) {
    bool finite = true;
    for (index_t t = 0; t < KK_; ++t)
      for (index_t l = 0; l < L; ++l) {
        const T v = l < nc ? w[l * KK_ + (flip ? KK_ - 1 - t : t)] : T(0);
        finite = finite && std::isfinite(v);
        wt_[t * L + l] = v;
      }
    return finite;
  }

  // yt (P, L) <- planes d (nc, OH, OW): dout for the gradients.
  void load_grid(const T* d, index_t nc) {
    const index_t P = g_.OH * g_.OW;
    to_lanes(d, P, P, nc, static_cast<const index_t*>(nullptr), yt_);
  }

  // out (nc, OH, OW) = the taps over the block, + bias b (nc,) or 0, relu: max(0, .). Four output pixels of a
  // row at a time, each tap accumulated in registers in tap order (as the planar sweeps).
  void forward(const T* b, T* out, index_t nc, bool relu) {
    const index_t OW = g_.OW, P = g_.OH * OW, step = g_.sw * L;
    for (index_t oh = 0; oh < g_.OH; ++oh) {
      const T* row = xt_ + oh * g_.sh * Wp_ * L;
      T* yrow = yt_ + oh * OW * L;
      index_t ow = 0;
      for (; ow + 4 <= OW; ow += 4) four(row + ow * step, step, yrow + ow * L);
      for (; ow < OW; ++ow) one(row + ow * step, yrow + ow * L);
    }
    from_lanes(yt_, static_cast<const index_t*>(nullptr), P, nc, out, P, b, relu);
  }

  // Partial weight and bias gradients of the block (dout in yt: load_grid): pp[l*(KK+1) + t] = sum over the
  // output pixels p of dout[p] * the tap's input, pp[l*(KK+1) + KK] = sum of dout, for l < nc; each sum in
  // pixel order, up to kTB taps per pass.
  void weight_grad(T* pp, index_t nc) const {
    const index_t OW = g_.OW, step = g_.sw * L;
    for (index_t t0 = 0; t0 < KK_; t0 += kTB) {
      const index_t nt = KK_ - t0 < kTB ? KK_ - t0 : kTB;
      V acc[kTB];
      for (int t = 0; t < kTB; ++t) acc[t] = V{};
      for (index_t oh = 0; oh < g_.OH; ++oh) {
        const T* row = xt_ + oh * g_.sh * Wp_ * L;
        for (index_t ow = 0; ow < OW; ++ow) {
          const V d = load_vec(yt_ + (oh * OW + ow) * L);
          const T* src = row + ow * step;
          if (nt == kTB) {
#pragma GCC unroll 9
            for (int t = 0; t < kTB; ++t) acc[t] += d * load_vec(src + off_[t0 + t]);
          } else {
            for (index_t t = 0; t < nt; ++t) acc[t] += d * load_vec(src + off_[t0 + t]);
          }
        }
      }
      for (index_t t = 0; t < nt; ++t)
        for (index_t l = 0; l < nc; ++l) pp[l * (KK_ + 1) + t0 + t] = acc[t][l];
    }
    V s{};
    for (index_t p = 0; p < g_.OH * OW; ++p) s += load_vec(yt_ + p * L);
    for (index_t l = 0; l < nc; ++l) pp[l * (KK_ + 1) + KK_] = s[l];
  }

  // dx (nc, H, W) = the input gradient of the block (dout in yt, weights in wt): every output pixel adds its
  // taps' weights times dout into a zeroed channels-last block (a vector per tap: the lanes are channels, so
  // no two lanes meet), the padding then cropped.
  void input_grad(T* dx, index_t nc) {
    const index_t OW = g_.OW, step = g_.sw * L, HW = g_.H * g_.W;
    std::memset(dxt_, 0, static_cast<std::size_t>(HpWp_ * L) * sizeof(T));
    for (index_t oh = 0; oh < g_.OH; ++oh) {
      T* row = dxt_ + oh * g_.sh * Wp_ * L;
      for (index_t ow = 0; ow < OW; ++ow) {
        const V d = load_vec(yt_ + (oh * OW + ow) * L);
        T* dst = row + ow * step;
        for (index_t t = 0; t < KK_; ++t) {
          V v = load_vec(dst + off_[t]);
          v += load_vec(wt_ + t * L) * d;
          std::memcpy(dst + off_[t], &v, sizeof v);
        }
      }
    }
    from_lanes(dxt_, interior_.data(), HW, nc, dx, HW, static_cast<const T*>(nullptr), false);
  }

 private:
  // Four output pixels whose tap 0 is at src, src + step, ...: every tap accumulated in registers in tap order
  // (tap 0 a product, then one multiply-add per tap, as the planar sweeps), stored at y, y + L, ...
  void four(const T* src, index_t step, T* y) const {
    const V w0 = load_vec(wt_);
    V a0 = w0 * load_vec(src + off_[0]), a1 = w0 * load_vec(src + off_[0] + step);
    V a2 = w0 * load_vec(src + off_[0] + 2 * step), a3 = w0 * load_vec(src + off_[0] + 3 * step);
    for (index_t t = 1; t < KK_; ++t) {
      const V wv = load_vec(wt_ + t * L);
      const T* s = src + off_[t];
      a0 += wv * load_vec(s);
      a1 += wv * load_vec(s + step);
      a2 += wv * load_vec(s + 2 * step);
      a3 += wv * load_vec(s + 3 * step);
    }
    std::memcpy(y, &a0, sizeof a0);
    std::memcpy(y + L, &a1, sizeof a1);
    std::memcpy(y + 2 * L, &a2, sizeof a2);
    std::memcpy(y + 3 * L, &a3, sizeof a3);
  }
  void one(const T* src, T* y) const {
    V a = load_vec(wt_) * load_vec(src + off_[0]);
    for (index_t t = 1; t < KK_; ++t) a += load_vec(wt_ + t * L) * load_vec(src + off_[t]);
    std::memcpy(y, &a, sizeof a);
  }

  const ConvGeom& g_;
  index_t Wp_, HpWp_, KK_;
  T *xt_, *dxt_, *yt_, *wt_;
  std::vector<index_t> interior_;  // the padded block's offset of every input pixel
  index_t off_[64];
};

// Channels-last blocks take one filter per channel and up to 64 taps.
inline bool cl_ok(const ConvGeom& g, index_t M) { return M == 1 && g.FH * g.FW <= 64; }

// The input gradient is a forward convolution of dout with the taps reversed when the stride is 1 and no pad
// exceeds the dilated window: dout padded by the window less each pad (flipped_geom) gives (H, W).
inline bool cl_flip_ok(const ConvGeom& g) {
  const index_t eh = g.dh * (g.FH - 1), ew = g.dw * (g.FW - 1);
  return g.sh == 1 && g.sw == 1 && g.pt <= eh && g.pb <= eh && g.pl <= ew && g.pr <= ew;
}
// (built here rather than with common/shapes.h's make_geom: that shared header's inline function, compiled
// with this file's ISA, could be the copy the linker keeps for every file; this one has internal linkage)
inline ConvGeom flipped_geom(const ConvGeom& g) {
  const index_t eh = g.dh * (g.FH - 1), ew = g.dw * (g.FW - 1);
  return ConvGeom{g.N, g.C, g.OH, g.OW, g.FH, g.FW, 1, 1, eh - g.pt, eh - g.pb, ew - g.pl, ew - g.pr,
                  g.dh, g.dw, g.H, g.W};
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// kernels

// ws: scratch of nthreads * ws_per values (the wide path's buffers, one block per thread).
template <typename T>
void depthwise_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                       bool relu, T* ws, index_t ws_per) {
  const index_t M = FN / g.C, HW = g.H * g.W, P = g.OH * g.OW, KK = g.FH * g.FW;
  if (cl_ok(g, M)) {
    constexpr index_t L = ClBlock<T>::L;
    const index_t CB = ceil_div(g.C, L);
#pragma omp parallel num_threads(nthreads) if (g.N * FN * P >= (1 << 14))
    {
      ClBlock<T> blk(g, ws + thread_id() * ws_per);
      index_t loaded = -1;  // the channel block whose weights blk holds
#pragma omp for schedule(static)
      for (index_t i = 0; i < g.N * CB; ++i) {  // block-major: a thread's blocks mostly share their weights
        const index_t n = i % g.N, cb = i / g.N, c0 = cb * L, nc = min_i(L, g.C - c0);
        if (cb != loaded) blk.load_weights(w + c0 * KK, nc);
        loaded = cb;
        blk.load_input(x + (n * g.C + c0) * HW, nc);
        blk.forward(b ? b + c0 : nullptr, out + (n * FN + c0) * P, nc, relu);
      }
    }
    return;
  }
#pragma omp parallel num_threads(nthreads) if (g.N * FN * P >= (1 << 14))
  {
    std::unique_ptr<WidePath<T>> wide;
    if (wide_ok(g)) wide = std::make_unique<WidePath<T>>(g, ws + thread_id() * ws_per);
#pragma omp for schedule(static)
    for (index_t nf = 0; nf < g.N * FN; ++nf) {
      const index_t n = nf / FN, f = nf % FN;
      fwd_plane_any<T>(x + (n * g.C + f / M) * HW, w + f * KK, b ? b[f] : T(0), out + nf * P, g, relu,
                       wide.get());
    }
  }
}

// part: scratch of N*FN*(KK + 1) values (a partial dW and db per image and filter).
template <typename T>
void depthwise_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                        index_t FN, int nthreads, T* part, T* ws, index_t ws_per) {
  const index_t C = g.C, M = FN / C, H = g.H, W = g.W, HW = H * W, OW = g.OW, P = g.OH * OW;
  const index_t FH = g.FH, FW = g.FW, KK = FH * FW, N = g.N;
  const bool par = N * FN * P >= (1 << 14);

  // one filter per channel: dW, db and dx by channels-last blocks; dx at stride 1 with pads within the dilated
  // window as the forward of dout (padded by the window less the pads) with the taps reversed, a gather
  // (cl_flip_ok; the scatter's read-modify-writes of overlapping taps wait on each other's stores), otherwise by
  // the scatter
  const bool cl = cl_ok(g, M);
  if (cl) {
    constexpr index_t L = ClBlock<T>::L;
    const index_t CB = ceil_div(C, L);
    const bool flip = cl_flip_ok(g);
    const ConvGeom gt = flipped_geom(g);
#pragma omp parallel num_threads(nthreads) if (par)
    {
      T* my = ws + thread_id() * ws_per;
      ClBlock<T> blk(g, my);
      std::unique_ptr<ClBlock<T>> fblk;  // the flipped forward's block, after blk's scratch
      if (dx && flip) fblk = std::make_unique<ClBlock<T>>(gt, my + ClBlock<T>::scratch(g, L));
      index_t loaded = -1;  // the channel block whose weights blk / fblk hold
      // the gather multiplies every weight by dout's zero padding too: an inf / NaN weight would turn into
      // NaN pixels the reference (and the scatter) never pair it with, so such a block takes the scatter
      bool gather = false;
#pragma omp for schedule(static)
      for (index_t i = 0; i < N * CB; ++i) {  // block-major, as the forward
        const index_t n = i % N, cb = i / N, c0 = cb * L, nc = min_i(L, C - c0);
        blk.load_input(x + (n * C + c0) * HW, nc);
        blk.load_grid(dout + (n * FN + c0) * P, nc);
        blk.weight_grad(part + (n * FN + c0) * (KK + 1), nc);
        if (!dx) continue;
        if (cb != loaded) {
          gather = fblk && fblk->load_weights(w + c0 * KK, nc, true);
          if (!gather) blk.load_weights(w + c0 * KK, nc);
        }
        loaded = cb;
        if (gather) {
          fblk->load_input(dout + (n * FN + c0) * P, nc);
          fblk->forward(static_cast<const T*>(nullptr), dx + (n * C + c0) * HW, nc, false);
        } else {
          blk.input_grad(dx + (n * C + c0) * HW, nc);
        }
      }
    }
  }
  // otherwise dW and db per (image, filter) plane, each tap's dot product of dout with the shifted input
#pragma omp parallel num_threads(nthreads) if (par && !cl)
  if (!cl) {
    std::unique_ptr<WidePath<T>> wide;
    if (wide_ok(g)) wide = std::make_unique<WidePath<T>>(g, ws + thread_id() * ws_per);
#pragma omp for schedule(static)
    for (index_t nf = 0; nf < N * FN; ++nf) {
      const index_t n = nf / FN, f = nf % FN;
      const T* xc = x + (n * C + f / M) * HW;  // (H, W)
      const T* dp = dout + nf * P;             // (OH, OW)
      T* pp = part + nf * (KK + 1);
      if (wide) {
        wide->weight_grad(xc, dp, pp);
      } else {
        for (index_t fh = 0; fh < FH; ++fh)
          for (index_t fw = 0; fw < FW; ++fw) {
            const index_t off = fw * g.dw - g.pl;
            index_t lo, hi;
            tap_range(off, W, g.sw, OW, lo, hi);
            T acc = T(0);
            for (index_t oh = 0; oh < g.OH; ++oh) {
              const index_t ih = oh * g.sh - g.pt + fh * g.dh;
              if (ih < 0 || ih >= H) continue;
              const T* xr = xc + ih * W + off;
              const T* drow = dp + oh * OW;
              if (g.sw == 1) {
#pragma omp simd reduction(+ : acc)
                for (index_t ow = lo; ow < hi; ++ow) acc += drow[ow] * xr[ow];
              } else {
                for (index_t ow = lo; ow < hi; ++ow) acc += drow[ow] * xr[ow * g.sw];
              }
            }
            pp[fh * FW + fw] = acc;
          }
      }
      T s = T(0);
#pragma omp simd reduction(+ : s)
      for (index_t i = 0; i < P; ++i) s += dp[i];
      pp[KK] = s;
    }
  }
  // the images' partials added in image order
#pragma omp parallel for schedule(static) num_threads(nthreads) if (par)
  for (index_t f = 0; f < FN; ++f) {
    for (index_t k = 0; k <= KK; ++k) {
      T acc = T(0);
      for (index_t n = 0; n < N; ++n) acc += part[(n * FN + f) * (KK + 1) + k];
      if (k < KK)
        dw[f * KK + k] = acc;
      else
        db[f] = acc;
    }
  }
  if (!dx || cl) return;

  // dx: per (image, channel) plane, the sum over the channel's M filters, each tap scatter-adding a scaled dout
  // row
#pragma omp parallel for schedule(static) num_threads(nthreads) if (par)
  for (index_t nc = 0; nc < N * C; ++nc) {
    const index_t n = nc / C, c = nc % C;
    T* dxc = dx + nc * HW;
    for (index_t i = 0; i < HW; ++i) dxc[i] = T(0);
    for (index_t m = 0; m < M; ++m) {
      const index_t f = c * M + m;
      dx_scatter_plane<T>(dout + (n * FN + f) * P, w + f * KK, dxc, g);
    }
  }
}

#define FC_DW_INSTANTIATE(T, S)                                                                              \
  template void depthwise_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int, bool, T*,  \
                                     index_t);                                                                \
  template void depthwise_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, int, \
                                      T*, T*, index_t);
FC_FLOAT_TYPES(FC_DW_INSTANTIATE)
#undef FC_DW_INSTANTIATE

}  // namespace fastconv::cpu::FC_DW_NS
