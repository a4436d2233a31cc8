// zeropad.cpp: out (N, C, OH, OW) = x (N, C, H, W) shifted by (top, left), zeros where nothing lands (see
// zeropad.h). A pass over memory: one copy per output row of the columns that come from x, zeros around them.
// Parallel over the N*C planes (each written by one thread). A copy: float16 / bfloat16 move their bits
// unchanged (T{} is +0 in every type).
#include "cpu/zeropad.h"

#include <algorithm>
#include <cstring>

#include "common/dtype.h"

namespace fastconv::cpu {

template <typename T>
void zeropad(const T* x, T* out, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t OH,
             std::int64_t OW, std::int64_t top, std::int64_t left, int nthreads) {
  using i64 = std::int64_t;
  // output rows [h0, h1) and columns [w0, w1) come from x; the rest is zero
  const i64 h0 = std::clamp<i64>(top, 0, OH), h1 = std::clamp<i64>(top + H, h0, OH);
  const i64 w0 = std::clamp<i64>(left, 0, OW), w1 = std::clamp<i64>(left + W, w0, OW);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * C * OH * OW >= (1 << 16))
  for (i64 p = 0; p < N * C; ++p) {
    const T* xp = x + p * H * W;  // (H, W) plane
    T* op = out + p * OH * OW;    // (OH, OW) plane
    std::fill(op, op + h0 * OW, T{});
    for (i64 h = h0; h < h1; ++h) {
      T* orow = op + h * OW;
      std::fill(orow, orow + w0, T{});
      if (w1 > w0) std::memcpy(orow + w0, xp + (h - top) * W + (w0 - left), (w1 - w0) * sizeof(T));
      std::fill(orow + w1, orow + OW, T{});
    }
    std::fill(op + h1 * OW, op + OH * OW, T{});
  }
}

#define FC_ZEROPAD_INSTANTIATE(T, S)                                                                        \
  template void zeropad<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, \
                           std::int64_t, std::int64_t, std::int64_t, int);
FC_FLOAT_TYPES(FC_ZEROPAD_INSTANTIATE)
FC_HALF_TYPES(FC_ZEROPAD_INSTANTIATE)
#undef FC_ZEROPAD_INSTANTIATE

}  // namespace fastconv::cpu
