// zeropad.h: zero padding and cropping of (N, C, H, W) planes, one kernel for both: out (N, C, OH, OW) holds
// x shifted by (top, left) -- out[n, c, h, w] = x[n, c, h - top, w - left] where that lies inside x, else 0.
// Positive offsets pad (ZeroPadding), negative ones crop (Cropping); each is the other's gradient.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

template <typename T>
void zeropad(const T* x, T* out, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t OH,
             std::int64_t OW, std::int64_t top, std::int64_t left, int nthreads);

}  // namespace fastconv::cpu
