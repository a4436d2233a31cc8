// conv_half.cpp: convolution (every group count, stride, padding and dilation), its backward and the
// transposed convolution for the storage types computed in float (the 16-bit f16, bf16, and the compute
// policy's float64 types f64_as_f32, f64_as_f16, f64_as_bf16 of common/policy.h) on the float kernels of
// conv.cpp. Inputs are widened in chunks of consecutive images (forward) or per gradient slot of consecutive
// images (backward) into per-thread float buffers, the float kernel runs on them, and the results are rounded
// once on the store: dx and out per chunk, dW and db after the slots' float partial sums are added in order
// (fixed by N alone, so the bits do not depend on the thread count). The filters (small) are widened once per
// call.
// Not yet done: the conversion inside the gather tiles / im2col packing themselves (the staging buffers cost
// one float copy of one chunk, or one slot's images, per thread).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "cpu/conv.h"
#include "cpu/conv_amx.h"
#include "cpu/half_convert.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

// The float copies of one forward chunk (input and output images) fit this: a good part of L2, so the copies
// are still cached when the float kernel reads them and when they are narrowed.
constexpr index_t CONV_STAGE_BYTES = 1 << 20;

template <typename S>
std::vector<float> widened(const S* p, index_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  if (p) widen(p, v.data(), n);
  return v;
}

// The forward of any convolution-like kernel: fwd(xf, of, images, inner threads) on chunks of consecutive
// images whose float copies (input and output) fit CONV_STAGE_BYTES, so the float kernel keeps its batch
// blocking (one small image at a time ran it several times slower, measured for 8x8x64) while the staged
// copies stay in L2.
// xn = values per input image, on = per output image. Each image's output is the float kernel's for that
// image alone, whatever chunk it falls in, so the chunks may follow the thread count: their number is
// rounded up to a multiple of it and the images are split evenly (chunk c holds images [N*c/chunks,
// N*(c+1)/chunks)), so that every thread gets as many. (100 images of 32x8x8 -> 64 channels in chunks of 42,
// 42 and 16 left one thread 84 images: the layer took 1.6x float32's time, measured.)
template <typename S, typename F>
void forward_by_chunk(const S* x, S* out, index_t N, index_t xn, index_t on, int nthreads, F&& fwd) {
  const index_t fit = std::clamp<index_t>(CONV_STAGE_BYTES / (4 * (xn + on)), 1, N);  // images per chunk
  index_t chunks = (N + fit - 1) / fit;
  if (chunks > 1 && nthreads > 1) chunks = std::min(N, (chunks + nthreads - 1) / nthreads * nthreads);
  const index_t per = (N + chunks - 1) / chunks;  // the most images a chunk holds
  // many chunks: one chunk per thread at a time; fewer chunks than threads: the float kernel's own threads
  const bool outer = chunks >= nthreads && nthreads > 1;
  const int inner = outer ? 1 : nthreads;
#pragma omp parallel num_threads(nthreads) if (outer)
  {
    Scratch<float> xf(static_cast<std::size_t>(per * xn)), of(static_cast<std::size_t>(per * on));
#pragma omp for schedule(static)
    for (index_t c = 0; c < chunks; ++c) {
      const index_t n0 = N * c / chunks, cnt = N * (c + 1) / chunks - n0;
      widen(x + n0 * xn, xf.data(), cnt * xn);
      fwd(xf.data(), of.data(), cnt, inner);
      narrow(of.data(), out + n0 * on, cnt * on);
    }
  }
}

// The backward: slots of consecutive images (min(N, CONV_GRAD_SLOTS) of them, slot s holding images
// [N*s/slots, N*(s+1)/slots), as conv.cpp's float slots: as many images per slot within one, so the threads
// get even shares), each widened as a whole and run through bwd(xf, df, dxf or null, dwf, dbf, images,
// inner threads) into its own float partial dW / db; the partials are then added in slot order and rounded
// once. The slots depend on N alone, so the bits do not depend on the thread count.
template <typename S, typename F>
void backward_by_slot(const S* x, const S* dout, S* dx, S* dw, S* db, index_t N, index_t xn, index_t dn,
                      index_t wsize, index_t bsize, int nthreads, F&& bwd) {
  const index_t slots = std::min<index_t>(N, CONV_GRAD_SLOTS);
  std::vector<float> pw(static_cast<std::size_t>(slots * wsize)), pb(static_cast<std::size_t>(slots * bsize));
  const index_t per = (N + slots - 1) / slots;  // the most images a slot holds
  // the slots spread over the threads (at most one a thread: past CONV_GRAD_SLOTS threads the rest idle, as in
  // the float kernel, whose slots are the same in number); one slot alone (N == 1) gets every thread inside
  const int outer_threads = static_cast<int>(std::min<index_t>(nthreads, slots));
  const bool outer = outer_threads > 1;
  const int inner = outer ? 1 : nthreads;
#pragma omp parallel num_threads(outer_threads) if (outer)
  {
    Scratch<float> xf(static_cast<std::size_t>(per * xn)), df(static_cast<std::size_t>(per * dn));
    Scratch<float> dxf(dx ? static_cast<std::size_t>(per * xn) : 0);
#pragma omp for schedule(static)
    for (index_t s = 0; s < slots; ++s) {
      const index_t n0 = N * s / slots, cnt = N * (s + 1) / slots - n0;  // cnt >= 1: slots <= N
      widen(x + n0 * xn, xf.data(), cnt * xn);
      widen(dout + n0 * dn, df.data(), cnt * dn);
      const OneGradSlot one;  // the float kernel sums this slot's images as one slot (conv.h)
      bwd(xf.data(), df.data(), dx ? dxf.data() : nullptr, pw.data() + s * wsize, pb.data() + s * bsize, cnt,
          inner);
      if (dx) narrow(dxf.data(), dx + n0 * xn, cnt * xn);
    }
  }
  for (index_t s = 1; s < slots; ++s) {
    for (index_t i = 0; i < wsize; ++i) pw[i] += pw[s * wsize + i];
    for (index_t i = 0; i < bsize; ++i) pb[i] += pb[s * bsize + i];
  }
  narrow(pw.data(), dw, wsize);
  narrow(pb.data(), db, bsize);
}

// bfloat16 and float16 on AMX tiles where conv_amx.h takes the call (true: done); every other type never.
// bfloat16 runs its whole backward there; float16 its input gradient alone (amx_backward_data: dx written),
// its weight gradient staged.
template <typename S>
bool amx_forward(const S*, const S*, const S*, S*, const ConvGeom&, index_t, int, bool) {
  return false;
}
template <typename S>
bool amx_backward(const S*, const S*, const S*, S*, S*, S*, const ConvGeom&, index_t, int) {
  return false;
}
template <typename S>
bool amx_backward_data(const S*, const S*, S*, const ConvGeom&, index_t, int) {
  return false;
}
inline bool amx_forward(const bf16* x, const bf16* w, const bf16* b, bf16* out, const ConvGeom& g, index_t FN,
                        int nthreads, bool relu) {
  return conv_forward_amx(x, w, b, out, g, FN, nthreads, relu);
}
inline bool amx_forward(const f16* x, const f16* w, const f16* b, f16* out, const ConvGeom& g, index_t FN,
                        int nthreads, bool relu) {
  return conv_forward_amx(x, w, b, out, g, FN, nthreads, relu);
}
inline bool amx_backward(const bf16* x, const bf16* w, const bf16* dout, bf16* dx, bf16* dw, bf16* db,
                         const ConvGeom& g, index_t FN, int nthreads) {
  return conv_backward_amx(x, w, dout, dx, dw, db, g, FN, nthreads);
}
inline bool amx_backward_data(const f16* w, const f16* dout, f16* dx, const ConvGeom& g, index_t FN, int nthreads) {
  return conv_backward_data_amx(w, dout, dx, g, FN, nthreads);
}

// The compute policy's bfloat16 and float16 (f64_as_bf16, f64_as_f16) on the same tiles, so that they stay bit
// for bit the 16-bit kernels on the rounded inputs: the doubles rounded once to H into copies, the 16-bit
// call, its results widened back (exact).
template <typename H, typename P>
std::vector<H> to_half(const P* p, index_t n) {
  std::vector<H> out(p ? static_cast<std::size_t>(n) : 0);
  if (!p) return out;
  std::vector<float> f(static_cast<std::size_t>(n));
  widen(p, f.data(), n);            // each double rounded once to H, held in a float
  narrow(f.data(), out.data(), n);  // exact
  return out;
}
template <typename H, typename P>
void from_half(const std::vector<H>& v, P* dst) {
  for (std::size_t i = 0; i < v.size(); ++i) dst[i].v = static_cast<double>(to_compute(v[i]));
}
template <typename H, typename P>
bool policy_amx_forward(const P* x, const P* w, const P* b, P* out, const ConvGeom& g, index_t FN, int nthreads,
                        bool relu) {
  // (the 16-bit call's own geometry tests, before any copy is made)
  if (!conv_amx_takes(g) || (std::is_same_v<H, f16> && !f16_tiles_gain(g.C, FN))) return false;
  const std::vector<H> xh = to_half<H>(x, g.N * g.C * g.H * g.W), wh = to_half<H>(w, FN * g.C * g.FH * g.FW),
                       bh = to_half<H>(b, FN);
  std::vector<H> oh(static_cast<std::size_t>(g.N * FN * g.OH * g.OW));
  if (!conv_forward_amx(xh.data(), wh.data(), b ? bh.data() : nullptr, oh.data(), g, FN, nthreads, relu))
    return false;
  from_half(oh, out);
  return true;
}
inline bool amx_forward(const f64_as_bf16* x, const f64_as_bf16* w, const f64_as_bf16* b, f64_as_bf16* out,
                        const ConvGeom& g, index_t FN, int nthreads, bool relu) {
  return policy_amx_forward<bf16>(x, w, b, out, g, FN, nthreads, relu);
}
inline bool amx_forward(const f64_as_f16* x, const f64_as_f16* w, const f64_as_f16* b, f64_as_f16* out,
                        const ConvGeom& g, index_t FN, int nthreads, bool relu) {
  return policy_amx_forward<f16>(x, w, b, out, g, FN, nthreads, relu);
}
inline bool amx_backward(const f64_as_bf16* x, const f64_as_bf16* w, const f64_as_bf16* dout, f64_as_bf16* dx,
                         f64_as_bf16* dw, f64_as_bf16* db, const ConvGeom& g, index_t FN, int nthreads) {
  if (!conv_amx_takes(g)) return false;
  const std::vector<bf16> xb = to_half<bf16>(x, g.N * g.C * g.H * g.W),
                          wb = to_half<bf16>(w, FN * g.C * g.FH * g.FW),
                          db16 = to_half<bf16>(dout, g.N * FN * g.OH * g.OW);
  std::vector<bf16> dxb(dx ? xb.size() : 0), dwb(wb.size()), dbb(static_cast<std::size_t>(FN));
  if (!conv_backward_amx(xb.data(), wb.data(), db16.data(), dx ? dxb.data() : nullptr, dwb.data(), dbb.data(), g,
                         FN, nthreads))
    return false;
  if (dx) from_half(dxb, dx);
  from_half(dwb, dw);
  from_half(dbb, db);
  return true;
}
inline bool amx_backward_data(const f64_as_f16* w, const f64_as_f16* dout, f64_as_f16* dx, const ConvGeom& g,
                              index_t FN, int nthreads) {
  if (!conv_amx_takes(g) || !f16_tiles_gain(FN, g.C)) return false;
  const std::vector<f16> wh = to_half<f16>(w, FN * g.C * g.FH * g.FW),
                         dh = to_half<f16>(dout, g.N * FN * g.OH * g.OW);
  std::vector<f16> dxh(static_cast<std::size_t>(g.N * g.C * g.H * g.W));
  if (!conv_backward_data_amx(wh.data(), dh.data(), dxh.data(), g, FN, nthreads)) return false;
  from_half(dxh, dx);
  return true;
}

inline ConvGeom with_images(ConvGeom g, index_t n) {
  g.N = n;
  return g;
}

}  // namespace

#define FC_CONV_HALF_(S, SUF)                                                                                     \
  template <>                                                                                                     \
  void conv_forward_groups<S>(const S* x, const S* w, const S* b, S* out, const ConvGeom& g, index_t FN,          \
                              index_t groups, int nthreads, bool relu) {                                          \
    if (groups == 1 && amx_forward(x, w, b, out, g, FN, nthreads, relu)) return;                                 \
    const std::vector<float> wf = widened(w, FN * (g.C / groups) * g.FH * g.FW), bf = widened(b, b ? FN : 0);    \
    forward_by_chunk(x, out, g.N, g.C * g.H * g.W, FN * g.OH * g.OW, nthreads,                                   \
                     [&](const float* xf, float* of, index_t cnt, int nt) {                                       \
                       conv_forward_groups<float>(xf, wf.data(), b ? bf.data() : nullptr, of, with_images(g, cnt), \
                                                  FN, groups, nt, relu);                                          \
                     });                                                                                          \
  }                                                                                                               \
  template <>                                                                                                     \
  void conv_backward_groups<S>(const S* x, const S* w, const S* dout, S* dx, S* dw, S* db, const ConvGeom& g,     \
                               index_t FN, index_t groups, int nthreads) {                                        \
    if (groups == 1 && amx_backward(x, w, dout, dx, dw, db, g, FN, nthreads)) return;                            \
    /* float16: the input gradient on the tiles where they take it, the weight gradient staged below */          \
    if (groups == 1 && dx && amx_backward_data(w, dout, dx, g, FN, nthreads)) dx = nullptr;                      \
    const index_t wsize = FN * (g.C / groups) * g.FH * g.FW;                                                      \
    const std::vector<float> wf = widened(w, wsize);                                                              \
    backward_by_slot(x, dout, dx, dw, db, g.N, g.C * g.H * g.W, FN * g.OH * g.OW, wsize, FN, nthreads,            \
                     [&](const float* xf, const float* df, float* dxf, float* dwf, float* dbf, index_t cnt,       \
                         int nt) {                                                                                \
                       conv_backward_groups<float>(xf, wf.data(), df, dxf, dwf, dbf, with_images(g, cnt), FN,     \
                                                   groups, nt);                                                   \
                     });                                                                                          \
  }                                                                                                               \
  template <>                                                                                                     \
  void deconv_forward<S>(const S* x, const S* w, const S* b, S* y, const ConvGeom& g, index_t C_in,               \
                         int nthreads) {                                                                          \
    /* g is the geometry of the convolution it transposes: its input is y (g.C channels), its output x */        \
    const std::vector<float> wf = widened(w, C_in * g.C * g.FH * g.FW), bf = widened(b, b ? g.C : 0);            \
    forward_by_chunk(x, y, g.N, C_in * g.OH * g.OW, g.C * g.H * g.W, nthreads,                                   \
                     [&](const float* xf, float* yf, index_t cnt, int nt) {                                       \
                       deconv_forward<float>(xf, wf.data(), b ? bf.data() : nullptr, yf, with_images(g, cnt), C_in, \
                                             nt);                                                                 \
                     });                                                                                          \
  }                                                                                                               \
  template <>                                                                                                     \
  void deconv_backward<S>(const S* x, const S* w, const S* dy, S* dx, S* dw, S* db, const ConvGeom& g,            \
                          index_t C_in, int nthreads) {                                                           \
    const index_t wsize = C_in * g.C * g.FH * g.FW;                                                               \
    const std::vector<float> wf = widened(w, wsize);                                                              \
    backward_by_slot(x, dy, dx, dw, db, g.N, C_in * g.OH * g.OW, g.C * g.H * g.W, wsize, g.C, nthreads,           \
                     [&](const float* xf, const float* dyf, float* dxf, float* dwf, float* dbf, index_t cnt,      \
                         int nt) {                                                                                \
                       deconv_backward<float>(xf, wf.data(), dyf, dxf, dwf, dbf, with_images(g, cnt), C_in, nt);  \
                     });                                                                                          \
  }
FC_HALF_TYPES(FC_CONV_HALF_)
FC_POLICY_TYPES(FC_CONV_HALF_)
#undef FC_CONV_HALF_

}  // namespace fastconv::cpu
