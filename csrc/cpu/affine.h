// affine.h: fully connected layer. x (N, D), W (D, H), b (H,), out/dout (N, H).
#pragma once
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

template <typename T>
void affine_forward(const T* x, const T* w, const T* b, T* out, index_t N, index_t D, index_t H, int nthreads);

// dx (N, D), dw (D, H), db (H,) are overwritten.
template <typename T>
void affine_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, index_t N, index_t D, index_t H,
                     int nthreads);

}  // namespace fastconv::cpu
