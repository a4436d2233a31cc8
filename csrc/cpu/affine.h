// affine.h: fully connected layer. x (N, D), W (D, H), b (H,), out/dout (N, H). trans_w: w holds W^T, an (H, D)
// row-major array (W a transposed view, as the sequel's tied TimeAffine(embed_W.T)); the GEMMs read it through
// strides, no copy.
#pragma once
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

template <typename T>
void affine_forward(const T* x, const T* w, const T* b, T* out, index_t N, index_t D, index_t H, bool trans_w,
                    int nthreads);

// dx (N, D), dw (D, H), db (H,) are overwritten.
template <typename T>
void affine_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, index_t N, index_t D, index_t H,
                     bool trans_w, int nthreads);

}  // namespace fastconv::cpu
