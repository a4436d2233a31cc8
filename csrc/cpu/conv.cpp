// conv.cpp: convolution forward and backward as GEMMs on per-thread buffers; never the whole batch's column
// matrix. x (N, C, H, W), W (FN, C, FH, FW) viewed as (FN, CK) with CK = C*FH*FW, out (N, FN, OH, OW).
//
// Stride 1 (every layer of the book's networks) -- "shifted views", no im2col at all:
//   The image is copied once into a zero-padded buffer xp (C, Hp, Wp) and read flat. Row k = (c, fh, fw) of
//   the column matrix, on the output grid widened to Wp columns, is xp shifted by offs[k] = c*Hp*Wp + fh*Wp
//   + fw: the micro-kernel reads B there directly (ukr fn_offs). Outputs are computed on the (OH, Wp) grid;
//   the Wp - OW extra columns per row are discarded (MNIST shapes: 7-20% extra work, no packing at all).
//     forward  out_n (FN, OH*Wp) = W (FN, CK) @ B_n (CK, OH*Wp) + b, then the valid columns are kept
//     dW      dW^T (CK, FN) = sum over images of B_n (CK, P2) @ dout_n^T (P2, FN), dout zero in the extra
//             columns: the rows kernel reads the rows of B_n in place from xp (no packing; only dout_n^T is
//             packed, FN x P2 values). An image holding inf / NaN takes the exact path instead (B_n^T packed
//             from the views with the extra columns zeroed), since 0 * inf there would leak NaN into taps that
//             never see it. Measured (1 thread, DeepConvNet layers, batch 100): backward 84-99 -> 63-66 ms
//             against the dot-product tiles it replaces.
//     dx      the adjoint of a stride-1 cross-correlation is a stride-1 cross-correlation of dout with the
//             filters flipped and channels swapped, padded by FH-1-pad: it runs on the forward path.
// Stride > 1: im2col per image (forward writes the packed B panel directly: implicit GEMM), dW on col_t,
//   dx = col2im(W^T @ dout_n).
// Images are spread over threads (MNIST-sized work per image); the weight gradient is summed over slots of
// consecutive images in an order fixed by N alone (conv.h), so dW and db do not depend on the thread count.
#include "cpu/conv.h"

#include <algorithm>
#include <vector>

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
// stride 1: padded image and shifted views

struct Shifted {
  index_t Hp, Wp;     // padded image
  index_t P2;         // OH * Wp: output grid widened to the padded row pitch
  index_t np2;        // P2 rounded up to NR
  index_t xp_size;    // C*Hp*Wp plus slack so the last sliver's reads stay inside
  std::vector<index_t> offs;  // (CK,): start of row k of B in xp
};

Shifted make_shifted(const ConvGeom& g, int nr) {
  Shifted s;
  s.Hp = g.H + 2 * g.pad;
  s.Wp = g.W + 2 * g.pad;
  s.P2 = g.OH * s.Wp;
  s.np2 = round_up(s.P2, nr);
  s.xp_size = g.C * s.Hp * s.Wp + (s.np2 - s.P2) + g.FW;
  s.offs.resize(static_cast<std::size_t>(g.C * g.FH * g.FW));
  index_t k = 0;
  for (index_t c = 0; c < g.C; ++c)
    for (index_t fh = 0; fh < g.FH; ++fh)
      for (index_t fw = 0; fw < g.FW; ++fw) s.offs[k++] = (c * s.Hp + fh) * s.Wp + fw;
  return s;
}

// xp (C, Hp, Wp) + slack <- image x (C, H, W) with zero borders. With CHECK, returns whether every value
// is finite (tested during the copy, which reads every value anyway); otherwise returns true.
template <bool CHECK, typename T>
bool pad_image(const T* x, const ConvGeom& g, const Shifted& s, T* xp) {
  bool bad = false;
  const index_t pad = g.pad, plane = s.Hp * s.Wp;
  for (index_t c = 0; c < g.C; ++c) {
    T* xc = xp + c * plane;
    std::fill(xc, xc + pad * s.Wp + pad, T(0));  // top rows and the left border of the first image row
    for (index_t h = 0; h < g.H; ++h) {
      const T* src = x + (c * g.H + h) * g.W;
      T* dst = xc + (h + pad) * s.Wp + pad;
      for (index_t w = 0; w < g.W; ++w) dst[w] = src[w];
      if (CHECK)
        for (index_t w = 0; w < g.W; ++w) bad |= !(src[w] - src[w] == T(0));  // inf - inf, NaN - NaN: NaN
      // right border of this row and left border of the next one are adjacent in the flat layout
      for (index_t w = g.W; w < g.W + 2 * pad; ++w) dst[w] = T(0);
    }
    std::fill(xc + (g.H + pad) * s.Wp + pad, xc + plane, T(0));  // bottom rows
  }
  std::fill(xp + g.C * plane, xp + s.xp_size, T(0));  // slack read by the last sliver
  return !bad;
}

// dout_n (FN, OH, OW) -> dt: fnpad/nr slivers of (P2, nr), i.e. dout_n^T on the widened grid with zeros in
// the Wp - OW extra columns and for the filters >= FN.
template <typename T>
void transpose_dout(const T* dn, const ConvGeom& g, const Shifted& s, index_t FN, index_t nr, T* dt) {
  const index_t P = g.OH * g.OW, fnpad = round_up(FN, nr);
  for (index_t q = 0; q < fnpad; q += nr) {
    T* d = dt + q * s.P2;
    const index_t nf = std::min(nr, FN - q);
    for (index_t oh = 0; oh < g.OH; ++oh) {
      T* row = d + oh * s.Wp * nr;  // (Wp, nr): one widened output row of nr filters
      if (nf < nr) std::fill(row, row + g.OW * nr, T(0));
      for (index_t j = 0; j < nf; ++j) {  // contiguous reads along ow; the writes stay in this small row
        const T* src = dn + (q + j) * P + oh * g.OW;
        for (index_t ow = 0; ow < g.OW; ++ow) row[ow * nr + j] = src[ow];
      }
      std::fill(row + g.OW * nr, row + s.Wp * nr, T(0));
    }
  }
}

// acc (ckpad, fnpad) [+]= sum over the images [n0, n1) of B_n (CK, P2) @ dout_n^T (P2, fnpad): dW^T on the
// widened grid with the rows kernel, A rows read in place from the padded images (row k of image i at
// xps + i*xp_size + roffs[k]), accumulators kept in registers across the images. An image holding inf or
// NaN is not summed here (0 * inf in the extra columns would leak NaN into taps that never see that value):
// the function returns how many images it summed, finite ones first, and the caller takes the exact path
// for the rest, listed in bad[].
template <typename T>
index_t conv_dw_rows_images(const Ukr<T>& u, const T* x, const T* dout, index_t n0, index_t n1, T* acc,
                            bool first, const ConvGeom& g, const Shifted& s, const std::vector<index_t>& roffs,
                            index_t FN, index_t* bad, index_t* nbad) {
  const index_t P = g.OH * g.OW, xs = g.C * g.H * g.W, nr = u.rows_nr, fnpad = round_up(FN, nr);
  const index_t ckpad = static_cast<index_t>(roffs.size()), ds = fnpad * s.P2, ni = n1 - n0;
  T* xps = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(ni * s.xp_size));
  T* dts = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(ni * ds));
  index_t ok = 0;
  *nbad = 0;
  for (index_t n = n0; n < n1; ++n) {
    if (pad_image<true>(x + n * xs, g, s, xps + ok * s.xp_size)) {
      transpose_dout(dout + n * FN * P, g, s, FN, nr, dts + ok * ds);
      ++ok;
    } else {
      bad[(*nbad)++] = n;
    }
  }
  if (ok == 0) return 0;
  for (index_t ct = 0; ct < ckpad; ct += u.rows_mr)
    for (index_t q = 0; q < fnpad; q += nr)
      u.rows(s.P2, ok, xps, s.xp_size, roffs.data() + ct, dts + q * s.P2, ds, acc + ct * fnpad + q, fnpad, !first);
  return ok;
}

// out_n (FN, OH, OW) = W @ shifted views of xp + b, for one image, on the calling thread.
template <typename T>
void conv_forward_shifted_image(const Ukr<T>& u, const T* apack, const T* b, const T* xn, T* on, const ConvGeom& g,
                                const Shifted& s, index_t FN) {
  const index_t CK = g.C * g.FH * g.FW, mpad = round_up(FN, u.mr), KC = gemm_kc<T>();
  T* xp = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(s.xp_size));
  T* ct = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(mpad * s.np2));  // (mpad, np2)
  pad_image<false>(xn, g, s, xp);
  // loop 4: pc += KC; loop 2: jr += NR over the widened grid; loop 1: ir += MR over the filters. The first K
  // block overwrites C (beta = 0: no pre-fill, no load of C); the bias is added while compacting.
  for (index_t pc = 0; pc < CK; pc += KC) {
    const index_t kc = std::min(KC, CK - pc);
    const T* ap = apack + mpad * pc;
    const index_t* of = s.offs.data() + pc;
    const T beta = pc == 0 ? T(0) : T(1);
    for (index_t jr = 0; jr < s.np2; jr += u.nr)
      for (index_t ir = 0; ir < mpad; ir += u.mr)
        u.fn_offs(kc, ap + ir * kc, xp + jr, of, ct + ir * s.np2 + jr, s.np2, T(1), beta);
  }
  // keep the OW valid columns of each widened output row, plus the bias
  for (index_t f = 0; f < FN; ++f) {
    const T bf = b[f];
    for (index_t oh = 0; oh < g.OH; ++oh) {
      const T* src = ct + f * s.np2 + oh * s.Wp;
      T* dst = on + (f * g.OH + oh) * g.OW;
      for (index_t ow = 0; ow < g.OW; ++ow) dst[ow] = src[ow] + bf;
    }
  }
}

// dW_grp (+)= dout_n @ B_n^T for one image, B_n^T packed from the shifted views of xp.
template <typename T>
void conv_dw_shifted_image(const Ukr<T>& u, const T* xn, const T* dn, T* gdw, bool first, const ConvGeom& g,
                           const Shifted& s, index_t FN) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, mpad = round_up(FN, u.mr), KC = gemm_kc<T>();
  T* xp = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(s.xp_size));
  T* dw = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(FN * s.P2));  // dout on the widened grid
  T* ap = thread_workspace<T>(WS_CONV_ROW, static_cast<std::size_t>(mpad * s.P2));
  T* bp = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(round_up(CK, u.nr) * std::min(KC, s.P2)));
  pad_image<false>(xn, g, s, xp);
  for (index_t f = 0; f < FN; ++f)
    for (index_t oh = 0; oh < g.OH; ++oh) {
      const T* src = dn + f * P + oh * g.OW;
      T* dst = dw + f * s.P2 + oh * s.Wp;
      for (index_t ow = 0; ow < g.OW; ++ow) dst[ow] = src[ow];
      for (index_t ow = g.OW; ow < s.Wp; ++ow) dst[ow] = T(0);
    }
  pack_a_full<T>(u, FN, s.P2, dw, s.P2, 1, ap);
  for (index_t pc = 0; pc < s.P2; pc += KC) {  // K = P2 output positions
    const index_t kc = std::min(KC, s.P2 - pc);
    pack_b_cols_kc_nc<T>(kc, CK, xp, s.offs.data(), pc, s.Wp, g.OW, u.nr, bp);
    macro_kernel<T>(u, FN, CK, kc, T(1), ap + mpad * pc, bp, (first && pc == 0) ? T(0) : T(1), gdw, CK);
  }
}

// ------------------------------------------------------------------------------------------------------
// stride > 1: im2col

// out_n = W @ im2col(x_n) + b with im2col written straight into the packed B panel (implicit GEMM).
template <typename T>
void conv_forward_im2col_image(const Ukr<T>& u, const T* apack, const T* b, const T* xn, T* on, const ConvGeom& g,
                               index_t FN) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, npad = round_up(P, u.nr);
  T* row = thread_workspace<T>(WS_CONV_ROW, static_cast<std::size_t>(npad));
  T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(npad * CK));
  im2col_image_packed<T>(xn, g, u.nr, gemm_kc<T>(), row, bpack);
  for (index_t f = 0; f < FN; ++f) std::fill(on + f * P, on + (f + 1) * P, b[f]);
  gemm_prepacked<T>(u, FN, P, CK, T(1), apack, bpack, T(1), on, P);
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// forward

template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W;
  const Ukr<T>& u = active_ukr<T>();
  // W (FN, CK) is packed once per call and shared read-only by every image
  Scratch<T> apack(static_cast<std::size_t>(round_up(FN, u.mr) * CK));
  pack_a_full<T>(u, FN, CK, w, CK, 1, apack.data());
  if (g.stride == 1) {
    const Shifted s = make_shifted(g, u.nr);
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (index_t n = 0; n < g.N; ++n)
      conv_forward_shifted_image<T>(u, apack.data(), b, x + n * xs, out + n * FN * P, g, s, FN);
  } else {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (index_t n = 0; n < g.N; ++n)
      conv_forward_im2col_image<T>(u, apack.data(), b, x + n * xs, out + n * FN * P, g, FN);
  }
}

// ------------------------------------------------------------------------------------------------------
// backward

template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W;
  const Ukr<T>& u = active_ukr<T>();
  const bool shifted = g.stride == 1;

  // dx, stride 1: dx[c, ih, iw] = sum_{f,i,j} W[f, c, FH-1-i, FW-1-j] * dout_pad[f, ih + i, iw + j] with
  // dout padded by FH-1-pad (FW-1-pad): a forward convolution. Square filters only (one pad argument), and
  // only when C fills a micro-kernel tile (its GEMM has M = C rows).
  const bool dx_by_conv = shifted && g.FH == g.FW && g.pad <= g.FH - 1 && g.C >= u.mr;
  // W^T (CK, FN) packed once for the dcol GEMMs: A(i=ck, k=f) = w[f*CK + ck]
  Scratch<T> wt_pack(dx_by_conv ? 0 : static_cast<std::size_t>(round_up(CK, u.mr) * FN));
  if (dx_by_conv) {
    Scratch<T> wflip(static_cast<std::size_t>(FN * CK)), zero(static_cast<std::size_t>(g.C), true);
    const index_t KK = g.FH * g.FW;
    for (index_t f = 0; f < FN; ++f)
      for (index_t c = 0; c < g.C; ++c)
        for (index_t k = 0; k < KK; ++k) wflip[(c * FN + f) * KK + (KK - 1 - k)] = w[(f * g.C + c) * KK + k];
    const ConvGeom gt = make_geom(g.N, FN, g.OH, g.OW, g.FH, g.FW, 1, g.FH - 1 - g.pad);  // gt.OH == H
    conv_forward<T>(dout, wflip.data(), zero.data(), dx, gt, g.C, nthreads);
  } else {
    pack_a_full<T>(u, CK, FN, w, 1, CK, wt_pack.data());
  }

  // dW and db: the images are split into S slots of consecutive images (S fixed by N alone, see conv.h); each
  // slot sums its images in order into its own partial dW^T (ckpad, fnpad) and db, and the slots are added
  // in order, so the result does not depend on the thread count.
  const index_t S = std::min(g.N, CONV_GRAD_SLOTS);
  const index_t fnpad = round_up(FN, u.rows_nr), ckpad = round_up(CK, u.rows_mr);
  const index_t pw = shifted ? ckpad * fnpad : FN * CK;  // one slot's partial dW: dW^T (shifted) or dW
  // (from the calling thread's workspace: kept across calls, not zeroed -- every slot overwrites its part)
  T* part_dw = thread_workspace<T>(WS_CONV_PART, static_cast<std::size_t>(S * (pw + FN)));
  T* part_db = part_dw + S * pw;
  const Shifted s = shifted ? make_shifted(g, u.nr) : Shifted{};
  std::vector<index_t> roffs;  // row offsets padded to a multiple of rows_mr (extra rows read xp[0..], discarded)
  index_t dw_batch = 1;        // images per rows-kernel pass: their padded images and dout^T fit CONV_DW_BYTES
  if (shifted) {
    roffs = s.offs;
    roffs.resize(static_cast<std::size_t>(ckpad), 0);
    const index_t per_image = (s.xp_size + fnpad * s.P2) * static_cast<index_t>(sizeof(T));
    dw_batch = std::max<index_t>(1, std::min<index_t>(CONV_DW_MAX_IMAGES, CONV_DW_BYTES / per_image));
  }
  const index_t npad = round_up(P, u.nr);
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (index_t slot = 0; slot < S; ++slot) {
    T* gdw = part_dw + slot * pw;
    T* gdb = part_db + slot * FN;
    std::fill(gdb, gdb + FN, T(0));
    const index_t n0 = g.N * slot / S, n1 = g.N * (slot + 1) / S;
    if (shifted) {
      // images in batches of dw_batch (fixed by the geometry): one rows-kernel pass per batch
      bool have = false;  // gdw holds a partial sum
      index_t bad[CONV_DW_MAX_IMAGES], nbad = 0;
      for (index_t b0 = n0; b0 < n1; b0 += dw_batch) {
        const index_t b1 = std::min(n1, b0 + dw_batch);
        if (conv_dw_rows_images<T>(u, x, dout, b0, b1, gdw, !have, g, s, roffs, FN, bad, &nbad) > 0) have = true;
        for (index_t i = 0; i < nbad; ++i) {
          // exact fallback for an image holding inf / NaN: its dW (FN, CK) from packed views, added transposed
          const index_t n = bad[i];
          T* tmp = thread_workspace<T>(WS_CONV_TMP, static_cast<std::size_t>(FN * CK));
          conv_dw_shifted_image<T>(u, x + n * xs, dout + n * FN * P, tmp, true, g, s, FN);
          for (index_t ck = 0; ck < CK; ++ck)
            for (index_t f = 0; f < FN; ++f)
              gdw[ck * fnpad + f] = have ? gdw[ck * fnpad + f] + tmp[f * CK + ck] : tmp[f * CK + ck];
          have = true;  // (the padding rows and columns of gdw stay undefined: they are never read)
        }
      }
    }
    for (index_t n = n0; n < n1; ++n) {
      const T* dn = dout + n * FN * P;  // (FN, P)
      const bool first = n == n0;
      for (index_t f = 0; f < FN; ++f) gdb[f] += row_sum(dn + f * P, P);
      if (!shifted) {
        T* col = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(CK * P));
        im2col_image<T>(x + n * xs, g, col);
        // B(k=p, j=ck) = col[ck*P + p]
        gemm_serial<T>(FN, CK, P, T(1), dn, P, 1, col, 1, P, first ? T(0) : T(1), gdw, CK);
      }
      if (dx_by_conv) continue;
      // dcol (CK, P) = W^T @ dout_n, then dx_n = col2im(dcol)
      T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(npad * FN));
      T* dcol = thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(CK * P));
      pack_b_full<T>(u, FN, P, dn, P, 1, bpack);
      gemm_prepacked<T>(u, CK, P, FN, T(1), wt_pack.data(), bpack, T(0), dcol, P);
      col2im_image<T>(dcol, g, dx + n * xs);
    }
  }

  // add the slots in a fixed order (independent of the thread count)
  // (read in the slots' own layout, a row chunk at a time so the adds vectorise; dW^T is written back
  // transposed)
  const index_t rows_out = shifted ? CK : FN, cols_out = shifted ? FN : CK, ld = shifted ? fnpad : CK;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (index_t r = 0; r < rows_out; ++r)
    for (index_t c0 = 0; c0 < cols_out; c0 += 64) {
      const index_t nc = std::min<index_t>(64, cols_out - c0);
      const T* p0 = part_dw + r * ld + c0;
      T acc[64];
      for (index_t c = 0; c < nc; ++c) acc[c] = p0[c];
      for (index_t slot = 1; slot < S; ++slot) {
        const T* ps = p0 + slot * pw;
#pragma omp simd
        for (index_t c = 0; c < nc; ++c) acc[c] += ps[c];
      }
      for (index_t c = 0; c < nc; ++c) dw[shifted ? (c0 + c) * CK + r : r * CK + c0 + c] = acc[c];
    }
  for (index_t f = 0; f < FN; ++f) {
    T acc = part_db[f];
    for (index_t slot = 1; slot < S; ++slot) acc += part_db[slot * FN + f];
    db[f] = acc;
  }
}

template void conv_forward<float>(const float*, const float*, const float*, float*, const ConvGeom&, index_t, int);
template void conv_forward<double>(const double*, const double*, const double*, double*, const ConvGeom&, index_t,
                                   int);
template void conv_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                   const ConvGeom&, index_t, int);
template void conv_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                    const ConvGeom&, index_t, int);

}  // namespace fastconv::cpu
