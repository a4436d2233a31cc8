// upsample.h: upsampling by integer factors sh x sw, nearest neighbour and bilinear (torch's align_corners=False:
// output pixel centres mapped back onto the input grid, src = (dst + 0.5) / s - 0.5 clamped at 0). x and dx are
// P = N*C planes of H x W; out and dout are P planes of (H*sh) x (W*sw).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// out[p, oh, ow] = x[p, oh / sh, ow / sw]
template <typename T>
void upsample_nearest_forward(const T* x, T* out, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t sh,
                              std::int64_t sw);

// dx[p, h, w] = sum of dout over the sh x sw block that copies x[p, h, w]
template <typename T>
void upsample_nearest_backward(const T* dout, T* dx, std::int64_t P, std::int64_t H, std::int64_t W,
                               std::int64_t sh, std::int64_t sw);

// out = the bilinear interpolation of x at the source position of each output pixel (two taps per axis)
template <typename T>
void upsample_bilinear_forward(const T* x, T* out, std::int64_t P, std::int64_t H, std::int64_t W,
                               std::int64_t sh, std::int64_t sw);

// dx = the adjoint of upsample_bilinear_forward applied to dout (each output's four weights scattered back)
template <typename T>
void upsample_bilinear_backward(const T* dout, T* dx, std::int64_t P, std::int64_t H, std::int64_t W,
                                std::int64_t sh, std::int64_t sw);

}  // namespace fastconv::cpu
