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

// The weight gradient is summed image by image, in order, into min(N, CONV_GRAD_SLOTS) slots of consecutive
// images (one partial dW per slot, scratch per thread: one image), and the slots are added in order: all
// fixed by N alone, so dW and db are bit-identical for any number of threads.
constexpr index_t CONV_GRAD_SLOTS = 16;

}  // namespace fastconv::cpu
