// im2col.cpp: im2col / col2im in the per-image transposed layout (conv's workhorse) and in the book's
// layout (fastconv.util). Row r = (c*FH + fh)*FW + fw of col_t holds, for every output pixel (oh, ow), the
// input x[c, oh*sh - pt + fh*dh, ow*sw - pl + fw*dw], or 0 in the padding (per-side pads and dilation index
// the input directly: no padded copy). For each (r, oh) the valid ow form one interval [ow_lo, ow_hi),
// computed once, so the inner loop has no bounds test and is a plain copy when sw == 1. The book layout also
// takes float16 / bfloat16: im2col copies their bits, col2im sums in float32 and rounds once.
#include "cpu/im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "cpu/half_convert.h"

namespace fastconv::cpu {

namespace {
// First and one-past-last output column whose input column ow*stride + off lies in [0, W) (off: the tap's
// column offset fw*dw - pl).
inline void valid_range(index_t W, index_t OW, index_t stride, index_t off, index_t& lo, index_t& hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = W - off <= 0 ? 0 : (W - off - 1) / stride + 1;
  lo = std::min(lo, OW);
  hi = std::min(std::max(hi, lo), OW);
}
}  // namespace

// ------------------------------------------------------------------------------------------------------
// per image, transposed layout

// One row r = (c, fh, fw) of col_t: P = OH*OW values.
template <typename T>
inline void im2col_row(const T* x, const ConvGeom& g, index_t c, index_t fh, index_t fw, T* row) {
  index_t lo, hi;
  const index_t off = fw * g.dw - g.pl;  // iw = ow*sw + off, >= 0 for ow >= lo
  valid_range(g.W, g.OW, g.sw, off, lo, hi);
  for (index_t oh = 0; oh < g.OH; ++oh) {
    T* dst = row + oh * g.OW;
    const index_t ih = oh * g.sh - g.pt + fh * g.dh;
    if (ih < 0 || ih >= g.H) {
      std::fill(dst, dst + g.OW, T(0));
      continue;
    }
    const T* src = x + (c * g.H + ih) * g.W;  // row ih of channel c
    // plain loops, not memcpy/fill: rows are short (MNIST: 28) and a libc call per row costs more than the copy
    for (index_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
    if (g.sw == 1) {
      const T* s1 = src + off;
#pragma omp simd
      for (index_t ow = lo; ow < hi; ++ow) dst[ow] = s1[ow];
    } else {
      for (index_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.sw + off];
    }
    for (index_t ow = hi; ow < g.OW; ++ow) dst[ow] = T(0);
  }
}

// Implicit GEMM: each row of col_t (m images side by side) is built in a small L1-resident buffer and
// scattered straight into the packed-B layout (per KC block of rows, NR-wide slivers of kc x nr), so the
// column matrix is never written in full and the GEMM needs no separate packing pass.
template <typename T, int NR>
static void im2col_images_packed_nr(const T* x, index_t xs, index_t m, const ConvGeom& g, int nr_rt, index_t KC,
                                    T* row, T* dst) {
  const index_t P = g.OH * g.OW, cols = m * P, CK = g.C * g.FH * g.FW;
  const int nr = NR > 0 ? NR : nr_rt;  // compile-time sliver width for the common ISAs
  const index_t npad = round_up(cols, nr);
  for (index_t j = cols; j < npad; ++j) row[j] = T(0);  // tail of the last sliver stays zero
  index_t k = 0;
  for (index_t pc = 0; pc < CK; pc += KC) {
    const index_t kc = std::min(KC, CK - pc);
    T* panel = dst + npad * pc;  // K block pc: slivers of (kc, nr), sliver j0/nr at panel + j0*kc
    for (index_t kk = 0; kk < kc; ++kk, ++k) {
      const index_t c = k / (g.FH * g.FW), fh = (k / g.FW) % g.FH, fw = k % g.FW;
      for (index_t i = 0; i < m; ++i) im2col_row(x + i * xs, g, c, fh, fw, row + i * P);
      T* blk = panel + kk * nr;
      for (index_t j0 = 0; j0 < npad; j0 += nr) {
        T* d = blk + j0 * kc;
        const T* r = row + j0;
#pragma omp simd
        for (int j = 0; j < nr; ++j) d[j] = r[j];
      }
    }
  }
}

template <typename T>
void im2col_images_packed(const T* x, index_t xs, index_t m, const ConvGeom& g, int nr, index_t KC, T* row,
                          T* dst) {
  switch (nr) {
    case 32: im2col_images_packed_nr<T, 32>(x, xs, m, g, nr, KC, row, dst); break;
    case 16: im2col_images_packed_nr<T, 16>(x, xs, m, g, nr, KC, row, dst); break;
    case 8: im2col_images_packed_nr<T, 8>(x, xs, m, g, nr, KC, row, dst); break;
    default: im2col_images_packed_nr<T, 0>(x, xs, m, g, nr, KC, row, dst); break;
  }
}

template <typename T>
void col2im_image(const T* col_t, const ConvGeom& g, T* x, index_t ld) {
  const index_t P = ld > 0 ? ld : g.OH * g.OW;  // the row stride of col_t
  std::fill(x, x + g.C * g.H * g.W, T(0));
  for (index_t c = 0; c < g.C; ++c)
    for (index_t fh = 0; fh < g.FH; ++fh)
      for (index_t fw = 0; fw < g.FW; ++fw) {
        const T* row = col_t + ((c * g.FH + fh) * g.FW + fw) * P;
        index_t lo, hi;
        const index_t off = fw * g.dw - g.pl;  // iw = ow*sw + off
        valid_range(g.W, g.OW, g.sw, off, lo, hi);
        for (index_t oh = 0; oh < g.OH; ++oh) {
          const index_t ih = oh * g.sh - g.pt + fh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const T* srcrow = row + oh * g.OW;
          T* dst = x + (c * g.H + ih) * g.W;  // row ih of channel c
          if (g.sw == 1) {
#pragma omp simd
            for (index_t ow = lo; ow < hi; ++ow) dst[ow + off] += srcrow[ow];
          } else {
            for (index_t ow = lo; ow < hi; ++ow) dst[ow * g.sw + off] += srcrow[ow];
          }
        }
      }
}

// ------------------------------------------------------------------------------------------------------
// book layout, parallel over images

template <typename T>
void im2col(const T* x, const ConvGeom& g, T* col, int nthreads) {
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (index_t n = 0; n < g.N; ++n) {
    const T* xn = x + n * g.C * g.H * g.W;
    T* coln = col + n * P * CK;  // (P, CK) block of image n
    for (index_t oh = 0; oh < g.OH; ++oh)
      for (index_t ow = 0; ow < g.OW; ++ow) {
        T* dst = coln + (oh * g.OW + ow) * CK;
        for (index_t c = 0; c < g.C; ++c)
          for (index_t fh = 0; fh < g.FH; ++fh) {
            const index_t ih = oh * g.sh - g.pt + fh * g.dh;
            for (index_t fw = 0; fw < g.FW; ++fw) {
              const index_t iw = ow * g.sw - g.pl + fw * g.dw;
              const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
              *dst++ = in ? xn[(c * g.H + ih) * g.W + iw] : T{};
            }
          }
      }
  }
}

// float16 / bfloat16: each image's sums go into a per-thread float32 image, rounded once when it is stored.
template <typename T>
void col2im(const T* col, const ConvGeom& g, T* x, int nthreads) {
  using A = compute_t<T>;
  const index_t CK = g.C * g.FH * g.FW, P = g.OH * g.OW, CHW = g.C * g.H * g.W;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<A> acc(is_half_v<T> ? CHW : 0);
#pragma omp for schedule(static)
    for (index_t n = 0; n < g.N; ++n) {
      A* xn;  // (C, H, W) sums of image n: x itself for float / double
      if constexpr (is_half_v<T>) xn = acc.data();
      else xn = x + n * CHW;
      const T* coln = col + n * P * CK;
      std::fill(xn, xn + CHW, A(0));
      for (index_t oh = 0; oh < g.OH; ++oh)
        for (index_t ow = 0; ow < g.OW; ++ow) {
          const T* src = coln + (oh * g.OW + ow) * CK;
          for (index_t c = 0; c < g.C; ++c)
            for (index_t fh = 0; fh < g.FH; ++fh) {
              const index_t ih = oh * g.sh - g.pt + fh * g.dh;
              for (index_t fw = 0; fw < g.FW; ++fw, ++src) {
                const index_t iw = ow * g.sw - g.pl + fw * g.dw;
                if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) xn[(c * g.H + ih) * g.W + iw] += to_compute(*src);
              }
            }
        }
      if constexpr (is_half_v<T>) store_row(xn, x + n * CHW, CHW);
    }
  }
}

#define FC_INSTANTIATE_IM2COL(T, S)                                          \
  template void im2col_images_packed<T>(const T*, index_t, index_t, const ConvGeom&, int, index_t, T*, T*); \
  template void col2im_image<T>(const T*, const ConvGeom&, T*, index_t); \
  template void im2col<T>(const T*, const ConvGeom&, T*, int);         \
  template void col2im<T>(const T*, const ConvGeom&, T*, int);
FC_FLOAT_TYPES(FC_INSTANTIATE_IM2COL)
#undef FC_INSTANTIATE_IM2COL

// The book layout for float16 / bfloat16 (the convolution stages its 16-bit tiles in conv_half.cpp instead).
#define FC_INSTANTIATE_IM2COL_BOOK(T, S)                           \
  template void im2col<T>(const T*, const ConvGeom&, T*, int); \
  template void col2im<T>(const T*, const ConvGeom&, T*, int);
FC_HALF_TYPES(FC_INSTANTIATE_IM2COL_BOOK)
#undef FC_INSTANTIATE_IM2COL_BOOK

}  // namespace fastconv::cpu
