// conv.cpp: convolution as per-image GEMMs on a per-thread column buffer (never the whole batch's column
// matrix: extra memory is one col_t of C*FH*FW x OH*OW per thread).
//   forward   out_n (FN, P)  = W (FN, CK) @ col_t_n (CK, P) + b        P = OH*OW, CK = C*FH*FW
//   backward  dW   (FN, CK) += dout_n (FN, P) @ col_t_n^T (P, CK)
//             dcol (CK, P)   = W^T (CK, FN) @ dout_n (FN, P);  dx_n = col2im(dcol)
//             db   (FN,)    += row sums of dout_n
// Small images (MNIST) run one image per thread; when the batch is smaller than the thread count the
// GEMM itself is split across threads. 1x1 stride-1 unpadded filters use x_n as col_t directly.
#include "cpu/conv.h"

#include <algorithm>
#include <vector>

#include "cpu/im2col.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {
inline bool is_pointwise(const ConvGeom& g) { return g.FH == 1 && g.FW == 1 && g.stride == 1 && g.pad == 0; }
}  // namespace

index_t conv_grad_groups(index_t N) { return std::min<index_t>(N, 16); }

// ------------------------------------------------------------------------------------------------------
// forward

template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W;
  const Ukr<T>& u = active_ukr<T>();
  const index_t npad = round_up(P, u.nr), KC = gemm_kc<T>();
  // W (FN, CK) is packed once per call and shared read-only by every image
  std::vector<T> apack(static_cast<std::size_t>(round_up(FN, u.mr) * CK));
  pack_a_full<T>(u, FN, CK, w, CK, 1, apack.data());
  auto bias = [&](T* on) {  // on is (FN, P): start from the bias, the GEMM accumulates onto it
    for (index_t f = 0; f < FN; ++f) std::fill(on + f * P, on + (f + 1) * P, b[f]);
  };
  if (g.N >= nthreads || nthreads == 1) {
    // one image per thread: im2col writes the packed B panel directly (implicit GEMM)
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (index_t n = 0; n < g.N; ++n) {
      T* row = thread_workspace<T>(WS_CONV_ROW, static_cast<std::size_t>(npad));
      T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(npad * CK));
      im2col_image_packed<T>(x + n * xs, g, u.nr, KC, row, bpack);
      T* on = out + n * FN * P;
      bias(on);
      gemm_prepacked<T>(u, FN, P, CK, T(1), apack.data(), bpack, T(1), on, P);
    }
  } else {
    // fewer images than threads (large images): split each image's GEMM across the threads instead
    const bool direct = is_pointwise(g);
    for (index_t n = 0; n < g.N; ++n) {
      const T* col = x + n * xs;
      if (!direct) {
        T* ws = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(CK * P));
        im2col_image<T>(x + n * xs, g, ws);
        col = ws;
      }
      T* on = out + n * FN * P;
      bias(on);
      gemm<T>(FN, P, CK, T(1), w, CK, 1, col, P, 1, T(1), on, P, nthreads);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// backward

template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, xs = g.C * g.H * g.W;
  const bool direct = is_pointwise(g);
  const index_t G = conv_grad_groups(g.N);
  const Ukr<T>& u = active_ukr<T>();
  const index_t npad = round_up(P, u.nr);
  // per-group partial gradients, reduced in group order below
  std::vector<T> part_dw(static_cast<std::size_t>(G * FN * CK)), part_db(static_cast<std::size_t>(G * FN));

  // dx for stride 1: the adjoint of a stride-1 cross-correlation is a stride-1 cross-correlation of dout
  // with the filters flipped in both spatial axes and input/output channels swapped, padded by FH-1-pad:
  //   dx[c, ih, iw] = sum_{f,i,j} W[f, c, FH-1-i, FW-1-j] * dout_pad[f, ih + i, iw + j]
  // so it runs on the forward path (implicit GEMM, no dcol matrix, no col2im). Square filters keep one pad.
  // Its GEMM has M = C rows, so it pays only when C fills a micro-kernel tile (not for a 1-channel input).
  const bool dx_by_conv = g.stride == 1 && g.FH == g.FW && g.pad <= g.FH - 1 && g.C >= u.mr;
  std::vector<T> wt_pack;  // W^T (CK, FN) packed once for the dcol GEMMs: A(i=ck, k=f) = w[f*CK + ck]
  if (!dx_by_conv) {
    wt_pack.resize(static_cast<std::size_t>(round_up(CK, u.mr) * FN));
    pack_a_full<T>(u, CK, FN, w, 1, CK, wt_pack.data());
  } else {
    std::vector<T> wflip(static_cast<std::size_t>(FN * CK)), zero(static_cast<std::size_t>(g.C), T(0));
    const index_t KK = g.FH * g.FW;
    for (index_t f = 0; f < FN; ++f)
      for (index_t c = 0; c < g.C; ++c)
        for (index_t k = 0; k < KK; ++k) wflip[(c * FN + f) * KK + (KK - 1 - k)] = w[(f * g.C + c) * KK + k];
    const ConvGeom gt = make_geom(g.N, FN, g.OH, g.OW, g.FH, g.FW, 1, g.FH - 1 - g.pad);  // gt.OH == H
    conv_forward<T>(dout, wflip.data(), zero.data(), dx, gt, g.C, nthreads);
  }

  auto one_group = [&](index_t grp, int gemm_threads) {
    const index_t n0 = g.N * grp / G, n1 = g.N * (grp + 1) / G;
    T* gdw = part_dw.data() + grp * FN * CK;
    T* gdb = part_db.data() + grp * FN;
    std::fill(gdb, gdb + FN, T(0));
    for (index_t n = n0; n < n1; ++n) {
      const T* dn = dout + n * FN * P;  // (FN, P)
      const T* col = x + n * xs;
      if (!direct) {
        T* ws = thread_workspace<T>(WS_CONV_COL, static_cast<std::size_t>(CK * P));
        im2col_image<T>(x + n * xs, g, ws);
        col = ws;
      }
      // dW_grp (+)= dout_n @ col_t^T : B(k=p, j=ck) = col[ck*P + p]
      gemm<T>(FN, CK, P, T(1), dn, P, 1, col, 1, P, n == n0 ? T(0) : T(1), gdw, CK, gemm_threads);
      for (index_t f = 0; f < FN; ++f) {
        T s = T(0);
        for (index_t p = 0; p < P; ++p) s += dn[f * P + p];
        gdb[f] += s;
      }
      if (dx_by_conv) continue;
      // dcol (CK, P) = W^T @ dout_n, then dx_n = col2im(dcol) (or dcol itself for 1x1 filters)
      T* dxn = dx + n * xs;
      T* dcol = direct ? dxn : thread_workspace<T>(WS_CONV_DCOL, static_cast<std::size_t>(CK * P));
      if (gemm_threads == 1) {
        T* bpack = thread_workspace<T>(WS_CONV_BPACK, static_cast<std::size_t>(npad * FN));
        pack_b_full<T>(u, FN, P, dn, P, 1, bpack);
        gemm_prepacked<T>(u, CK, P, FN, T(1), wt_pack.data(), bpack, T(0), dcol, P);
      } else {
        gemm<T>(CK, P, FN, T(1), w, 1, CK, dn, P, 1, T(0), dcol, P, gemm_threads);
      }
      if (!direct) col2im_image<T>(dcol, g, dxn);
    }
  };
  if (G >= nthreads || nthreads == 1) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (index_t grp = 0; grp < G; ++grp) one_group(grp, 1);
  } else {
    for (index_t grp = 0; grp < G; ++grp) one_group(grp, nthreads);
  }

  // reduce the groups in a fixed order (independent of the thread count)
  const index_t nw = FN * CK;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (index_t i = 0; i < nw; ++i) {
    T s = part_dw[i];
    for (index_t grp = 1; grp < G; ++grp) s += part_dw[grp * nw + i];
    dw[i] = s;
  }
  for (index_t f = 0; f < FN; ++f) {
    T s = part_db[f];
    for (index_t grp = 1; grp < G; ++grp) s += part_db[grp * FN + f];
    db[f] = s;
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
