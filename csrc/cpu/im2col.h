// im2col.h: unfolding of convolution windows into columns, and its adjoint col2im.
// Two layouts: per image, transposed  col_t (C*FH*FW, OH*OW)  (what conv uses: W(FN, C*FH*FW) @ col_t
// writes NCHW directly), and the book's   col (N*OH*OW, C*FH*FW)  (fastconv.util.im2col).
#pragma once
#include "common/shapes.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

// The col_t of m images side by side, (C*FH*FW, m*OH*OW) (image i, xs values after image i-1 in x, in columns
// [i*OH*OW, (i+1)*OH*OW)), written in the GEMM's packed-B order (see pack_b_full in gemm.h): dst holds
// round_up(m*OH*OW, nr) * C*FH*FW values; row is scratch of round_up(m*OH*OW, nr) values.
template <typename T>
void im2col_images_packed(const T* x, index_t xs, index_t m, const ConvGeom& g, int nr, index_t KC, T* row,
                          T* dst);
// col_t is (C*FH*FW, OH*OW) with rows ld apart (ld 0: OH*OW); x is (C, H, W), overwritten with the sum of
// every column entry over its pixel.
template <typename T>
void col2im_image(const T* col_t, const ConvGeom& g, T* x, index_t ld = 0);

// Book layout. x is (N, C, H, W); col is (N*OH*OW, C*FH*FW).
template <typename T>
void im2col(const T* x, const ConvGeom& g, T* col, int nthreads);
template <typename T>
void col2im(const T* col, const ConvGeom& g, T* x, int nthreads);

}  // namespace fastconv::cpu
