// conv.h: 2-D convolution (cross-correlation, as in the book), forward and backward.
// x (N, C, H, W), w (FN, C, FH, FW), b (FN,), out/dout (N, FN, OH, OW).
#pragma once
#include "common/shapes.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

// relu: out = relu(conv(x, w) + b) in the same pass, bit for bit relu_forward of the plain result (the book's
// Convolution followed by Relu, fused by the models: the ReLU costs no pass over memory of its own).
template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                  bool relu = false);

// dx (N, C, H, W), dw (FN, C, FH, FW), db (FN,) are overwritten; dx == nullptr skips the input gradient (a
// network's first layer: nothing reads it).
template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads);

// The weight gradient is summed image by image, in order, into min(N, CONV_GRAD_SLOTS) slots of consecutive
// images (one partial dW per slot, scratch per thread: one image), and the slots are added in order: all
// fixed by N alone, so dW and db are bit-identical for any number of threads.
constexpr index_t CONV_GRAD_SLOTS = 16;
// Stride-1 weight gradient: a slot's images go through the rows kernel in batches of up to
// CONV_DW_MAX_IMAGES whose padded images and dout^T fit CONV_DW_BYTES (about half an L2), so C is written
// back once per batch rather than once per image (small images: 8x8 grids are 80 k-steps per image).
constexpr index_t CONV_DW_MAX_IMAGES = 8;
constexpr index_t CONV_DW_BYTES = 256 * 1024;

}  // namespace fastconv::cpu
