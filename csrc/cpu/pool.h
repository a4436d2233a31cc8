// pool.h: max and average pooling over (N, C, H, W) planes; output (N, C, OH, OW) with
// OH = (H + 2*pad - pool_h) / stride + 1. Preconditions (checked by bindings/pool.cpp): pool_h, pool_w,
// stride > 0, 0 <= pad < pool_h and pool_w, H + 2*pad >= pool_h, W + 2*pad >= pool_w, H*W < 2^31.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// out = max over the real positions of each window (padding never wins); argmax = ih*W + iw of the
// winner in its (n, c) plane; ties go to the first position in row-major order, a NaN wins and stays.
template <typename T>
void maxpool_forward(const T* x, T* out, std::int32_t* argmax, std::int64_t N, std::int64_t C, std::int64_t H,
                     std::int64_t W, std::int64_t pool_h, std::int64_t pool_w, std::int64_t stride, std::int64_t pad);

// dx = 0, then dx[plane][argmax] += dout for every output. Returns -1, or the flat index into argmax of the
// first value outside [0, H*W) (such entries are skipped, never written through).
template <typename T>
std::int64_t maxpool_backward(const T* dout, const std::int32_t* argmax, T* dx, std::int64_t N, std::int64_t C,
                              std::int64_t H, std::int64_t W, std::int64_t pool_h, std::int64_t pool_w,
                              std::int64_t stride, std::int64_t pad);

// out = sum of the window's real positions / (pool_h * pool_w): padding counts as zeros.
template <typename T>
void avgpool_forward(const T* x, T* out, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                     std::int64_t pool_h, std::int64_t pool_w, std::int64_t stride, std::int64_t pad);

// dx = 0, then every real position of each window gets dout / (pool_h * pool_w).
template <typename T>
void avgpool_backward(const T* dout, T* dx, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                      std::int64_t pool_h, std::int64_t pool_w, std::int64_t stride, std::int64_t pad);

}  // namespace fastconv::cpu
