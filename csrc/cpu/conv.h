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

// The weight gradient is summed per group of at most CONV_GROUP_IMAGES images (bounded scratch per
// thread), groups are summed in order into at most CONV_GRAD_SLOTS slots, and the slots are added in order:
// all fixed by N alone, so dW and db are bit-identical for any number of threads.
constexpr index_t CONV_GROUP_IMAGES = 8;
constexpr index_t CONV_GRAD_SLOTS = 16;

}  // namespace fastconv::cpu
