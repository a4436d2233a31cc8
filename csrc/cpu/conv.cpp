// conv.cpp: convolution forward and backward as GEMMs on per-thread buffers; never the whole batch's column
// matrix. x (N, C, H, W), W (FN, C, FH, FW) viewed as (FN, CK) with CK = C*FH*FW, out (N, FN, OH, OW).
//
// Gather tiles, no im2col at all (every layer with a filter larger than 1x1, any stride):
//   The image is copied once into a zero-padded buffer xp (C, Hp, Wp) (Hp = pt + H + pb, Wp = pl + W + pr)
//   and read flat: element (p, k) of the column matrix, output pixel p = (oh, ow) and tap k = (c, fh, fw),
//   is xp[pos[p] + offs[k]] with pos[p] = oh*sh*Wp + ow*sw and offs[k] = c*Hp*Wp + fh*dh*Wp + fw*dw (stride
//   and dilation only spread the offsets). The gather tile (ukr_simd.h) broadcasts A from
//   there and multiplies packed slivers of nr filters, so only valid pixels are computed and no column
//   matrix is packed; every product is one of im2col's GEMM (inf / NaN propagate the same way).
//     forward  out_n^T (P, FN) = col_n (P, CK) @ W^T (CK, FN): tiles of rows_mr pixels x rows_nr filters,
//              then transposed into NCHW with the bias (8 x 8 register transposes).
//     dW      dW^T (CK, FN) = sum over images of col_n^T (CK, P) @ dout_n^T (P, FN): tiles of taps x filters,
//             the accumulators kept in registers across a batch of images (1x1 filters too).
//     dx      stride 1: the adjoint of a stride-1 cross-correlation is a stride-1 cross-correlation of dout
//             with the filters flipped and channels swapped, padded by dh*(FH-1)-pt on top (and so on per
//             side): it runs on the forward path.
//   Against the earlier form (B read as vector loads from shifted views on the output grid widened to Wp
//   columns, filters on the micro-kernel's rows), measured on Zen 3, 2 threads, DeepConvNet's six layers at
//   batch 100, alternating processes (the best of 3 each): forward 14.5 -> 12.2 ms, backward 29.4 -> 24.6
//   ms: the widened grid cost 7-25% extra work, the rows of 6 filters 3-12% padding, and vector loads at
//   arbitrary offsets split cache lines.
// Grouped im2col (CONV_GROUP_COLS columns of images side by side, so a 7x7 image's 49 pixels still make a wide
//   GEMM): the forward of 1x1 filters (forward_by_gather; the packed B panel written directly: implicit GEMM)
//   and the input gradient at stride > 1, dx = col2im(W^T @ [dout_n ...]).
// Images are spread over threads (MNIST-sized work per image); with fewer images than threads, the threads
// share each image's gather tiles, or each group's filters in the grouped GEMM (threads_inside_image). The
// weight gradient is summed over slots of consecutive images in an order fixed by N alone (conv.h), so dW and
// db do not depend on the thread count.
#include "cpu/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "cpu/activation.h"
#include "cpu/gemm/config.h"
#include "cpu/im2col.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

// Sum of v[0..n) in 8 interleaved partial sums, added in a fixed order: vectorisable (a single running sum
// is one dependent add per element) and the same bits on any thread count.
template <typename T>
T row_sum(const T* v, index_t n) {
  constexpr int L = 8;
  T part[L] = {};
  index_t i = 0;
  for (; i + L <= n; i += L)
#pragma omp simd
    for (int l = 0; l < L; ++l) part[l] += v[i + l];
  for (; i < n; ++i) part[i % L] += v[i];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

// ------------------------------------------------------------------------------------------------------
// padded image and gather tiles

// One layer as the gather tiles see it: the padded image and the offsets of its output pixels (strided) and of
// its taps (dilated) in there.
struct GatherGeom {
  index_t Hp, Wp;             // padded image
  index_t xp_size;            // C*Hp*Wp: every pixel + tap offset stays inside ((OH-1)*sh + dh*(FH-1) < Hp)
  std::vector<index_t> offs;  // (ckpad,): tap k = (c, fh, fw) at c*Hp*Wp + fh*dh*Wp + fw*dw; padding rows 0
  std::vector<index_t> pos;   // (ppad,): output pixel p = (oh, ow) at oh*sh*Wp + ow*sw; padding rows 0
  index_t CK, P;              // taps and pixels before padding
};

// rmr: the gather tile's rows; both lists are padded to a multiple of it (their padding rows read valid
// memory and are discarded).
GatherGeom make_gather_geom(const ConvGeom& g, int rmr) {
  GatherGeom s;
  s.Hp = g.H + g.pt + g.pb;
  s.Wp = g.W + g.pl + g.pr;
  s.xp_size = g.C * s.Hp * s.Wp;
  s.CK = g.C * g.FH * g.FW;
  s.P = g.OH * g.OW;
  s.offs.assign(static_cast<std::size_t>(round_up(s.CK, rmr)), 0);
  s.pos.assign(static_cast<std::size_t>(round_up(s.P, rmr)), 0);
  index_t k = 0;
  for (index_t c = 0; c < g.C; ++c)
    for (index_t fh = 0; fh < g.FH; ++fh)
      for (index_t fw = 0; fw < g.FW; ++fw) s.offs[k++] = (c * s.Hp + fh * g.dh) * s.Wp + fw * g.dw;
  index_t p = 0;
  for (index_t oh = 0; oh < g.OH; ++oh)
    for (index_t ow = 0; ow < g.OW; ++ow) s.pos[p++] = oh * g.sh * s.Wp + ow * g.sw;
  return s;
}

// xp (C, Hp, Wp) <- image x (C, H, W) with zero borders.
template <typename T>
void pad_image(const T* x, const ConvGeom& g, const GatherGeom& s, T* xp) {
  const index_t pt = g.pt, pl = g.pl, plane = s.Hp * s.Wp;
  for (index_t c = 0; c < g.C; ++c) {
    T* xc = xp + c * plane;
    std::fill(xc, xc + pt * s.Wp + pl, T(0));  // top rows and the left border of the first image row
    for (index_t h = 0; h < g.H; ++h) {
      T* dst = xc + (h + pt) * s.Wp + pl;
      const T* src = x + (c * g.H + h) * g.W;
      // 8 values per fixed-size copy (inlined as vector moves; a loop or std::copy here becomes a memmove
      // call per image row, which measured at 7% of a 28x28 forward)
      index_t w = 0;
      for (; w + 8 <= g.W; w += 8) std::memcpy(dst + w, src + w, 8 * sizeof(T));
      for (; w < g.W; ++w) dst[w] = src[w];
      // right border of this row and left border of the next one are adjacent in the flat layout (the last
      // row's right border only: with no bottom rows the plane ends there)
      std::fill(dst + g.W, dst + g.W + g.pr + (h + 1 < g.H ? pl : 0), T(0));
    }
    std::fill(xc + (g.H + pt) * s.Wp, xc + plane, T(0));  // bottom rows
  }
}

// src (FN, P) -> dst: fnpad/nr slivers of (P, nr), i.e. src^T with zeros for the rows >= FN. (The forward
// packs W (FN, CK) this way, the weight gradient dout_n (FN, P).)
template <typename T>
void pack_slivers_t(const Ukr<T>& u, const T* src, index_t FN, index_t P, T* dst) {
  const index_t nr = u.rows_nr;
  for (index_t q = 0; q < round_up(FN, nr); q += nr) {
    T* d = dst + q * P;
    const index_t nf = std::min(nr, FN - q);
    if (nf < nr) std::fill(d, d + P * nr, T(0));
    u.tr(src + q * P, P, nf, P, nullptr, d, nr, false);  // d[p*nr + j] = src[(q + j)*P + p]
  }
}

// acc (ckpad, fnpad) [+]= sum over the images [n0, n1) of col_n^T (CK, P) @ dout_n^T (P, fnpad): dW^T by
// gather tiles, A read in place from the padded images (tap k of pixel p of image i at xps + i*xp_size +
// offs[k] + pos[p]), accumulators kept in registers across the images. Only the P valid pixels are summed
// and each product is one the column matrix has, so inf / NaN propagate exactly as in im2col's GEMM.
template <typename T>
void conv_dw_rows_images(const Ukr<T>& u, const T* x, const T* dout, index_t n0, index_t n1, T* acc, bool first,
                         const ConvGeom& g, const GatherGeom& s, index_t FN, int inner) {
  const index_t xs = g.C * g.H * g.W, nr = u.rows_nr, fnpad = round_up(FN, nr), P = s.P;
  const index_t ckpad = static_cast<index_t>(s.offs.size()), ds = fnpad * P, ni = n1 - n0;
  T* xps = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(ni * s.xp_size));
  T* dts = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(ni * ds));
  for (index_t i = 0; i < ni; ++i) {
    pad_image(x + (n0 + i) * xs, g, s, xps + i * s.xp_size);
    pack_slivers_t(u, dout + (n0 + i) * FN * P, FN, P, dts + i * ds);
  }
  // the tiles (taps x filter slivers) are independent: `inner` threads share them when the batch is too
  // small to spread over threads (the buffers above are the calling thread's, read by all)
  const index_t nq = fnpad / nr, tiles = ckpad / u.rows_mr * nq;
#pragma omp parallel for schedule(static) num_threads(inner) if (inner > 1)
  for (index_t tile = 0; tile < tiles; ++tile) {
    const index_t ct = tile / nq * u.rows_mr, q = tile % nq * nr;
    u.rows(P, ni, xps, s.xp_size, s.offs.data() + ct, s.pos.data(), dts + q * P, ds, acc + ct * fnpad + q, fnpad,
           !first);
  }
}

// out_n (FN, OH, OW) = W @ col_n + b for one image, on the calling thread: out_n^T (ppad, fnpad) by gather
// tiles (pixels x filters, B = W^T slivers), then transposed into place with the bias.
template <typename T>
void conv_forward_gather_image(const Ukr<T>& u, const T* wt, const T* b, const T* xn, T* on, const ConvGeom& g,
                               const GatherGeom& s, index_t FN, int inner, bool relu) {
  const index_t CK = s.CK, P = s.P, nr = u.rows_nr, fnpad = round_up(FN, nr), KC = gemm_kc<T>();
  const index_t ppad = static_cast<index_t>(s.pos.size());
  T* xp = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(s.xp_size));
  T* ct = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(ppad * fnpad));
  pad_image(xn, g, s, xp);
  // tiles: filter slivers x pixel tiles, independent within a K block (shared by `inner` threads when the
  // batch is too small to spread over threads; xp and ct are the calling thread's, read by all)
  const index_t nt = ppad / u.rows_mr, tiles = fnpad / nr * nt;
  for (index_t pc = 0; pc < CK; pc += KC) {
    const index_t kc = std::min(KC, CK - pc);
#pragma omp parallel for schedule(static) num_threads(inner) if (inner > 1)
    for (index_t tile = 0; tile < tiles; ++tile) {
      const index_t q = tile / nt * nr, t = tile % nt * u.rows_mr;
      u.rows(kc, 1, xp, 0, s.pos.data() + t, s.offs.data() + pc, wt + q * CK + pc * nr, 0, ct + t * fnpad + q,
             fnpad, pc > 0);
    }
  }
  // out_n[f, p] = ct[p, f] + b[f] (ReLU'd if relu), in blocks of pixels (a multiple of 8: whole register
  // transposes)
  constexpr index_t PB = 256;
#pragma omp parallel for schedule(static) num_threads(inner) if (inner > 1)
  for (index_t p0 = 0; p0 < P; p0 += PB)
    u.tr(ct + p0 * fnpad, fnpad, std::min(PB, P - p0), FN, b, on + p0, P, relu);
}

// Threads inside one image rather than across images: when the batch has fewer images than threads and one
// image is worth a fork (the GEMM's PARALLEL_MIN_MACS), e.g. single-image inference on a large input.
inline int threads_inside_image(index_t N, index_t macs_per_image, int nthreads) {
  return N < nthreads && macs_per_image >= gemm_config::PARALLEL_MIN_MACS ? nthreads : 1;
}

// dx of a stride-1 convolution as a forward convolution: dx[c, ih, iw] = sum_{f,i,j} W[f, c, FH-1-i, FW-1-j] *
// dout_pad[f, ih + i*dh, iw + j*dw] with dout padded by dh*(FH-1) - pt on top, dh*(FH-1) - pb at the bottom
// (dw*(FW-1) - pl, - pr at the sides): a forward convolution with C filters. Used for square filters whose
// padding leaves those pads >= 0, and only when C fills at least half of the gather tile's filter sliver
// (C = 1, 3, 6 take col2im).
template <typename T>
bool dx_by_flipped_conv(const ConvGeom& g, const Ukr<T>& u) {
  const index_t eh = g.dh * (g.FH - 1), ew = g.dw * (g.FW - 1);
  return g.sh == 1 && g.sw == 1 && g.FH == g.FW && g.pt <= eh && g.pb <= eh && g.pl <= ew && g.pr <= ew &&
         round_up(g.C, gather_ukr(u, g.C).rows_nr) <= 2 * g.C;  // the C filters of that forward
}

// The geometry of that forward convolution: input dout (N, FN, OH, OW), output (N, C, H, W).
inline ConvGeom flipped_geom(const ConvGeom& g, index_t FN) {
  const index_t eh = g.dh * (g.FH - 1), ew = g.dw * (g.FW - 1);
  return make_geom(g.N, FN, g.OH, g.OW, g.FH, g.FW, 1, 1, eh - g.pt, eh - g.pb, ew - g.pl, ew - g.pr, g.dh,
                   g.dw);  // OH + eh - pt - pb == H
}

// wflip (C, FN, FH, FW) = W (FN, C, FH, FW) with channels swapped and taps reversed.
template <typename T>
void flip_filters(const T* w, const ConvGeom& g, index_t FN, T* wflip) {
  const index_t KK = g.FH * g.FW;
  for (index_t f = 0; f < FN; ++f)
    for (index_t c = 0; c < g.C; ++c)
      for (index_t k = 0; k < KK; ++k) wflip[(c * FN + f) * KK + (KK - 1 - k)] = w[(f * g.C + c) * KK + k];
}

// ------------------------------------------------------------------------------------------------------
// grouped im2col

// Images per group of the grouped im2col paths (the 1x1 forward, conv_backward_data): enough for
// CONV_GROUP_COLS columns (small images: one 7x7 image is 49 columns, one and a half 32-wide slivers) and at most
// a share of the batch per thread. A group changes no element's sum, so it may follow the thread count.
inline index_t images_per_group(index_t P, index_t N, int nthreads) {
  return std::max<index_t>(1, std::min<index_t>((CONV_GROUP_COLS + P - 1) / P, (N + nthreads - 1) / nthreads));
}

// out_n = W @ im2col(x_n) + b for the m images from xg on, im2col written straight into the packed B panel
// (implicit GEMM) side by side: one GEMM of m*P columns, then b added (ReLU'd if relu) as each image's
// (FN, P) block is written out. The products are summed before b is added whatever m is, so every output
// bit is the same in any grouping.
template <typename T>
void conv_forward_im2col_group(const Ukr<T>& u, const T* apack, const T* b, const T* xg, index_t m, T* og,
                               const ConvGeom& g, index_t FN, int inner, bool relu) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, cols = m * P, npad = round_up(cols, u.nr);
  T* row = thread_workspace<T>(WS_CONV_ROW, static_cast<std::size_t>(npad));
  T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(npad * CK));
  im2col_images_packed<T>(xg, g.C * g.H * g.W, m, g, u.nr, gemm_kc<T>(), row, bpack);
  // one image: straight into its output; more: a (FN, m*P) buffer scattered per image
  T* prod = m == 1 ? og : thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(FN * cols));
  // `inner` threads (a batch smaller than the thread count) share the filters, in slivers of mr rows
  const index_t slivers = round_up(FN, u.mr) / u.mr;
#pragma omp parallel for schedule(static) num_threads(inner) if (inner > 1)
  for (index_t t = 0; t < inner; ++t) {
    const index_t r0 = slivers * t / inner * u.mr, r1 = std::min(FN, slivers * (t + 1) / inner * u.mr);
    if (r1 > r0) gemm_prepacked_rows<T>(u, FN, r0, r1 - r0, cols, CK, T(1), apack, bpack, T(0), prod, cols);
  }
#pragma omp parallel for collapse(2) schedule(static) num_threads(inner) if (inner > 1)
  for (index_t i = 0; i < m; ++i)
    for (index_t f = 0; f < FN; ++f) {
      const T* src = prod + f * cols + i * P;
      T* dst = og + (i * FN + f) * P;
      const T bf = b ? b[f] : T(0);
      if (relu) {
#pragma omp simd
        for (index_t p = 0; p < P; ++p) dst[p] = relu_value(src[p] + bf);
      } else {
#pragma omp simd
        for (index_t p = 0; p < P; ++p) dst[p] = src[p] + bf;
      }
    }
}

}  // namespace

namespace {
thread_local bool one_grad_slot = false;
}
index_t conv_grad_slots(index_t N) { return one_grad_slot ? 1 : std::min(N, CONV_GRAD_SLOTS); }
OneGradSlot::OneGradSlot() : saved_(one_grad_slot) { one_grad_slot = true; }
OneGradSlot::~OneGradSlot() { one_grad_slot = saved_; }

// ------------------------------------------------------------------------------------------------------
// forward

// The forward runs on the gather tiles unless the filter is 1x1: that convolution is one GEMM of the
// (subsampled) image, which the grouped im2col path packs once and multiplies at the GEMM's speed, while the
// gather tile's K (C taps) is short. Measured on one core of the 2-vCPU AVX-512 Xeon, batch 100 (a one-off A/B
// on a busy host): 1x1 stride 2, 16 -> 32 at 28x28 0.58 ms grouped against 0.77 gathered, 64 -> 128 at 14x14
// 1.0 against 1.3; 3x3 stride 2, 16 -> 32 at 28x28 3.6 ms per image im2col against 1.7 gathered; 5x5 stride 2,
// 64 -> 128 at 14x14 12.9 against 9.3. (The weight gradient gathers for every filter: 1x1 stride 2, 16 -> 32,
// 0.62 ms against 1.0 for per-image im2col.)
inline bool forward_by_gather(const ConvGeom& g) { return g.FH * g.FW > 1; }

template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                  bool relu) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W;
  const Ukr<T> u = gather_ukr(active_ukr<T>(), FN);  // gather tiles of pixels x FN filters
  if (forward_by_gather(g)) {
    // W^T (CK, fnpad) packed once per call as slivers of nr filters, shared read-only by every image
    Scratch<T> wt(static_cast<std::size_t>(round_up(FN, u.rows_nr) * CK));
    pack_slivers_t<T>(u, w, FN, CK, wt.data());
    const GatherGeom s = make_gather_geom(g, u.rows_mr);
    const int inner = threads_inside_image(g.N, FN * CK * P, nthreads);
    auto image = [&](index_t n) {
      conv_forward_gather_image<T>(u, wt.data(), b, x + n * xs, out + n * FN * P, g, s, FN, inner, relu);
    };
    if (inner == 1) {
#pragma omp parallel for schedule(dynamic, 2) num_threads(nthreads)
      for (index_t n = 0; n < g.N; ++n) image(n);
    } else {  // the threads work inside each image; no region around them here
      for (index_t n = 0; n < g.N; ++n) image(n);
    }
  } else {
    // W (FN, CK) packed once per call and shared read-only by every group of images
    Scratch<T> apack(static_cast<std::size_t>(round_up(FN, u.mr) * CK));
    pack_a_full<T>(u, FN, CK, w, CK, 1, apack.data());
    const index_t nb = images_per_group(P, g.N, nthreads), groups = (g.N + nb - 1) / nb;
    const int inner = threads_inside_image(g.N, FN * CK * P, nthreads);
    auto group = [&](index_t gi) {
      const index_t n0 = gi * nb;
      conv_forward_im2col_group<T>(u, apack.data(), b, x + n0 * xs, std::min(nb, g.N - n0), out + n0 * FN * P, g,
                                   FN, inner, relu);
    };
    if (inner == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
      for (index_t gi = 0; gi < groups; ++gi) group(gi);
    } else {  // the threads share each group's filters; no region around them here
      for (index_t gi = 0; gi < groups; ++gi) group(gi);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// backward

template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW;
  const Ukr<T> u = gather_ukr(active_ukr<T>(), FN);  // dW's gather tiles: taps x FN filters
  if (dx) {
    // the input gradient is conv_backward_data's; its flipped forward gets a zero bias, so that a sum of -0.0
    // products comes out +0.0 as col2im's (which adds onto +0.0) and the reference's
    const bool flipped = dx_by_flipped_conv(g, active_ukr<T>());
    Scratch<T> zero(flipped ? static_cast<std::size_t>(g.C) : 0, true);
    conv_backward_data<T>(w, dout, flipped ? zero.data() : nullptr, dx, g, FN, nthreads);
  }

  // dW and db: the images are split into S slots of consecutive images (S fixed by N alone, see conv.h); each
  // slot sums its images in order into its own partial dW^T (ckpad, fnpad) and db, and the slots are added
  // in order, so the result does not depend on the thread count.
  const index_t S = conv_grad_slots(g.N);
  const index_t fnpad = round_up(FN, u.rows_nr), ckpad = round_up(CK, u.rows_mr);
  const index_t pw = ckpad * fnpad;  // one slot's partial dW^T
  // (from the calling thread's workspace: kept across calls, not zeroed -- every slot overwrites its part)
  T* part_dw = thread_workspace<T>(WS_CONV_PART, static_cast<std::size_t>(S * (pw + FN)));
  T* part_db = part_dw + S * pw;
  const GatherGeom s = make_gather_geom(g, u.rows_mr);
  // images per gather pass: their padded images and dout^T fit CONV_DW_BYTES
  const index_t per_image = (s.xp_size + fnpad * P) * static_cast<index_t>(sizeof(T));
  const index_t dw_batch = std::max<index_t>(1, std::min<index_t>(CONV_DW_MAX_IMAGES, CONV_DW_BYTES / per_image));
  const int inner = threads_inside_image(g.N, FN * CK * P, nthreads);
  auto slot_work = [&](index_t slot) {
    T* gdw = part_dw + slot * pw;
    T* gdb = part_db + slot * FN;
    std::fill(gdb, gdb + FN, T(0));
    const index_t n0 = g.N * slot / S, n1 = g.N * (slot + 1) / S;
    // images in batches of dw_batch (fixed by the geometry): one gather pass per batch
    for (index_t b0 = n0; b0 < n1; b0 += dw_batch)
      conv_dw_rows_images<T>(u, x, dout, b0, std::min(n1, b0 + dw_batch), gdw, b0 == n0, g, s, FN, inner);
    for (index_t n = n0; n < n1; ++n) {
      const T* dn = dout + n * FN * P;  // (FN, P)
      for (index_t f = 0; f < FN; ++f) gdb[f] += row_sum(dn + f * P, P);
    }
  };
  if (inner == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (index_t slot = 0; slot < S; ++slot) slot_work(slot);
  } else {  // the threads work inside each image (conv_dw_rows_images); no region around them here
    for (index_t slot = 0; slot < S; ++slot) slot_work(slot);
  }

  // add the slots in a fixed order (independent of the thread count)
  // (read in the slots' own layout, a row chunk at a time so the adds vectorise; dW^T is written back
  // transposed)
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (index_t r = 0; r < CK; ++r)
    for (index_t c0 = 0; c0 < FN; c0 += 64) {
      const index_t nc = std::min<index_t>(64, FN - c0);
      const T* p0 = part_dw + r * fnpad + c0;
      T acc[64];
      for (index_t c = 0; c < nc; ++c) acc[c] = p0[c];
      for (index_t slot = 1; slot < S; ++slot) {
        const T* ps = p0 + slot * pw;
#pragma omp simd
        for (index_t c = 0; c < nc; ++c) acc[c] += ps[c];
      }
      for (index_t c = 0; c < nc; ++c) dw[(c0 + c) * CK + r] = acc[c];
    }
  for (index_t f = 0; f < FN; ++f) {
    T acc = part_db[f];
    for (index_t slot = 1; slot < S; ++slot) acc += part_db[slot * FN + f];
    db[f] = acc;
  }
}

// ------------------------------------------------------------------------------------------------------
// backward data alone (the transposed convolution's forward)

template <typename T>
void conv_backward_data(const T* w, const T* dout, const T* bias, T* dx, const ConvGeom& g, index_t FN,
                        int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W, HW = g.H * g.W;
  const Ukr<T>& u = active_ukr<T>();
  if (dx_by_flipped_conv(g, u)) {  // stride 1: a forward convolution of dout, the bias added as it writes
    Scratch<T> wflip(static_cast<std::size_t>(FN * CK));
    flip_filters(w, g, FN, wflip.data());
    conv_forward<T>(dout, wflip.data(), bias, dx, flipped_geom(g, FN), g.C, nthreads);
    return;
  }
  // dcol (CK, nb*P) = W^T @ [dout_n0 ... dout_n0+nb-1] for groups of nb images, then dx_n = col2im(image n's
  // columns of dcol) (+ bias per channel), one group per thread. A group is one GEMM wide enough for the
  // micro-kernel: one 7x7 image has 49 columns, one and a half 32-wide slivers (the transposed convolution
  // 128 -> 64, 5x5, stride 2, on 7x7, one thread: 22.5 ms image by image, a 1600 x 3136 x 128 GEMM alone 12.3).
  // Every dcol element is the same sum over the same K blocks whatever the grouping, so nb may follow the
  // thread count (enough groups for every thread) without changing a bit.
  Scratch<T> wt_pack(static_cast<std::size_t>(round_up(CK, u.mr) * FN));
  pack_a_full<T>(u, CK, FN, w, 1, CK, wt_pack.data());
  const index_t nb = images_per_group(P, g.N, nthreads);
  const index_t groups = (g.N + nb - 1) / nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (index_t gi = 0; gi < groups; ++gi) {
    const index_t n0 = gi * nb, m = std::min(nb, g.N - n0), cols = m * P;
    T* dgrp = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(FN * cols));  // (FN, m*P)
    T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(round_up(cols, u.nr) * FN));
    T* dcol = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(CK * cols));
    for (index_t f = 0; f < FN; ++f)
      for (index_t i = 0; i < m; ++i)
        std::copy(dout + ((n0 + i) * FN + f) * P, dout + ((n0 + i) * FN + f + 1) * P, dgrp + f * cols + i * P);
    pack_b_full<T>(u, FN, cols, dgrp, cols, 1, bpack);
    gemm_prepacked<T>(u, CK, cols, FN, T(1), wt_pack.data(), bpack, T(0), dcol, cols);
    for (index_t i = 0; i < m; ++i) {
      T* dxn = dx + (n0 + i) * xs;  // (C, H, W)
      col2im_image<T>(dcol + i * P, g, dxn, cols);
      if (bias)
        for (index_t c = 0; c < g.C; ++c) {
          T* plane = dxn + c * HW;
          const T bc = bias[c];
#pragma omp simd
          for (index_t i2 = 0; i2 < HW; ++i2) plane[i2] += bc;
        }
    }
  }
}

template <typename T>
void channel_sums(const T* y, index_t N, index_t C, index_t HW, T* out, int nthreads) {
  // per channel: the images' plane sums added in image order (the same bits on any thread count)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * C * HW >= (1 << 15))
  for (index_t c = 0; c < C; ++c) {
    T acc = T(0);
    for (index_t n = 0; n < N; ++n) acc += row_sum(y + (n * C + c) * HW, HW);
    out[c] = acc;
  }
}

// ------------------------------------------------------------------------------------------------------
// grouped convolution (1 < groups < C): each group's channels copied out, convolved, copied back

namespace {

// dst (N, cn, HW) = src[:, c0:c0+cn] of src (N, C, HW), or the reverse when `back`.
template <typename T>
void copy_channels(T* grouped, T* full, index_t N, index_t C, index_t c0, index_t cn, index_t HW, bool back,
                   int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * cn * HW >= (1 << 15))
  for (index_t n = 0; n < N; ++n) {
    T* a = grouped + n * cn * HW;
    T* b = full + (n * C + c0) * HW;
    if (back)
      std::copy(a, a + cn * HW, b);
    else
      std::copy(b, b + cn * HW, a);
  }
}

// The geometry of one group: the same window over Cg = C / groups channels.
inline ConvGeom group_geom(const ConvGeom& g, index_t groups) {
  ConvGeom gg = g;
  gg.C = g.C / groups;
  return gg;
}

}  // namespace

template <typename T>
void conv_forward_grouped(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN,
                          index_t groups, int nthreads, bool relu) {
  const ConvGeom gg = group_geom(g, groups);
  const index_t Cg = gg.C, FNg = FN / groups, HW = g.H * g.W, P = g.OH * g.OW, wg = FNg * Cg * g.FH * g.FW;
  Scratch<T> xg(static_cast<std::size_t>(g.N * Cg * HW)), og(static_cast<std::size_t>(g.N * FNg * P));
  for (index_t gi = 0; gi < groups; ++gi) {
    copy_channels<T>(xg.data(), const_cast<T*>(x), g.N, g.C, gi * Cg, Cg, HW, false, nthreads);
    conv_forward<T>(xg.data(), w + gi * wg, b ? b + gi * FNg : nullptr, og.data(), gg, FNg, nthreads, relu);
    copy_channels<T>(og.data(), out, g.N, FN, gi * FNg, FNg, P, true, nthreads);
  }
}

template <typename T>
void conv_backward_grouped(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                           index_t FN, index_t groups, int nthreads) {
  const ConvGeom gg = group_geom(g, groups);
  const index_t Cg = gg.C, FNg = FN / groups, HW = g.H * g.W, P = g.OH * g.OW, wg = FNg * Cg * g.FH * g.FW;
  Scratch<T> xg(static_cast<std::size_t>(g.N * Cg * HW)), dg(static_cast<std::size_t>(g.N * FNg * P));
  Scratch<T> dxg(dx ? static_cast<std::size_t>(g.N * Cg * HW) : 0);
  for (index_t gi = 0; gi < groups; ++gi) {
    copy_channels<T>(xg.data(), const_cast<T*>(x), g.N, g.C, gi * Cg, Cg, HW, false, nthreads);
    copy_channels<T>(dg.data(), const_cast<T*>(dout), g.N, FN, gi * FNg, FNg, P, false, nthreads);
    // dW and db of a group are contiguous slices of dW (FN, Cg, FH, FW) and db (FN,)
    conv_backward<T>(xg.data(), w + gi * wg, dg.data(), dx ? dxg.data() : nullptr, dw + gi * wg, db + gi * FNg, gg,
                     FNg, nthreads);
    if (dx) copy_channels<T>(dxg.data(), dx, g.N, g.C, gi * Cg, Cg, HW, true, nthreads);
  }
}

template <typename T>
void conv_forward_groups(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN,
                         index_t groups, int nthreads, bool relu) {
  if (groups == 1)
    conv_forward<T>(x, w, b, out, g, FN, nthreads, relu);
  else if (groups == g.C)
    depthwise_forward<T>(x, w, b, out, g, FN, nthreads, relu);
  else
    conv_forward_grouped<T>(x, w, b, out, g, FN, groups, nthreads, relu);
}

template <typename T>
void conv_backward_groups(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                          index_t FN, index_t groups, int nthreads) {
  if (groups == 1)
    conv_backward<T>(x, w, dout, dx, dw, db, g, FN, nthreads);
  else if (groups == g.C)
    depthwise_backward<T>(x, w, dout, dx, dw, db, g, FN, nthreads);
  else
    conv_backward_grouped<T>(x, w, dout, dx, dw, db, g, FN, groups, nthreads);
}

// ------------------------------------------------------------------------------------------------------
// transposed convolution

template <typename T>
void deconv_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, index_t C_in, int nthreads) {
  conv_backward_data<T>(w, x, b, y, g, C_in, nthreads);
}

template <typename T>
void deconv_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeom& g, index_t C_in,
                     int nthreads) {
  // dx: the convolution of dy (the adjoint of its backward data); dW: the convolution's weight gradient with
  // the roles of input (dy) and output gradient (x) taken by the transposed convolution's output and input
  if (dx) conv_forward<T>(dy, w, nullptr, dx, g, C_in, nthreads);
  Scratch<T> unused_db(static_cast<std::size_t>(C_in));
  conv_backward<T>(dy, w, x, nullptr, dw, unused_db.data(), g, C_in, nthreads);
  channel_sums<T>(dy, g.N, g.C, g.H * g.W, db, nthreads);
}

#define FC_CONV_INSTANTIATE(T, S)                                                                            \
  template void conv_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int, bool);      \
  template void conv_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, int);   \
  template void conv_backward_data<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int);      \
  template void channel_sums<T>(const T*, index_t, index_t, index_t, T*, int);                               \
  template void conv_forward_grouped<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, index_t, \
                                        int, bool);                                                          \
  template void conv_forward_groups<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, index_t,  \
                                       int, bool);                                                           \
  template void conv_backward_groups<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t,  \
                                        index_t, int);                                                       \
  template void conv_backward_grouped<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, \
                                         index_t, int);                                                      \
  template void deconv_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int);          \
  template void deconv_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, int);
FC_FLOAT_TYPES(FC_CONV_INSTANTIATE)
#undef FC_CONV_INSTANTIATE

}  // namespace fastconv::cpu
