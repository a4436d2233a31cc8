// pool.h: max and average pooling over (N, C, H, W) planes; output (N, C, OH, OW). The window is g.FH x g.FW
// (pool_h x pool_w) with strides (g.sh, g.sw) and padding (g.pt, g.pb, g.pl, g.pr). Preconditions (check_geom,
// common/geom.h, WindowKind::pool): pool sizes and strides > 0, 0 <= pt, pb < pool_h and 0 <= pl, pr < pool_w,
// the padded input at least the window, H*W < 2^31.
#pragma once
#include <cstdint>

#include "common/dtype.h"
#include "common/shapes.h"

namespace fastconv::cpu {

// out = max over the real positions of each window (padding never wins); argmax = ih*W + iw of the
// winner in its (n, c) plane; ties go to the first position in row-major order, a NaN wins and stays.
// argmax may be null (inference): the winners' positions are then not stored.
template <typename T>
void maxpool_forward(const T* x, T* out, std::int32_t* argmax, const ConvGeom& g);

// dx = 0, then dx[plane][argmax] += dout for every output. Returns -1, or the flat index into argmax of the
// first value outside [0, H*W) (such entries are skipped, never written through).
template <typename T>
std::int64_t maxpool_backward(const T* dout, const std::int32_t* argmax, T* dx, const ConvGeom& g);

// out = sum of the window's real positions / (pool_h * pool_w): padding counts as zeros.
template <typename T>
void avgpool_forward(const T* x, T* out, const ConvGeom& g);

// dx = 0, then every real position of each window gets dout / (pool_h * pool_w).
template <typename T>
void avgpool_backward(const T* dout, T* dx, const ConvGeom& g);

// f16 / bf16 (pool_half.cpp): the float kernels on chunks of whole planes widened to float, one rounding on the
// store.
#define FC_POOL_HALF_DECL_(S, SUF)                                                                        \
  template <> void maxpool_forward<S>(const S*, S*, std::int32_t*, const ConvGeom&);                      \
  template <> std::int64_t maxpool_backward<S>(const S*, const std::int32_t*, S*, const ConvGeom&);       \
  template <> void avgpool_forward<S>(const S*, S*, const ConvGeom&);                                     \
  template <> void avgpool_backward<S>(const S*, S*, const ConvGeom&);
FC_HALF_TYPES(FC_POOL_HALF_DECL_)
#undef FC_POOL_HALF_DECL_

}  // namespace fastconv::cpu
