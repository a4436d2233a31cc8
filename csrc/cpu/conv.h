// conv.h: 2-D convolution (cross-correlation, as in the book), forward and backward.
// x (N, C, H, W), w (FN, C, FH, FW), b (FN,), out/dout (N, FN, OH, OW).
#pragma once
#include "common/shapes.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads);

// dx (N, C, H, W), dw (FN, C, FH, FW), db (FN,) are overwritten.
template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads);

// Number of fixed batch groups the weight-gradient reduction is split into (independent of the thread
// count, so dW and db are bit-identical for any number of threads).
index_t conv_grad_groups(index_t N);

}  // namespace fastconv::cpu
