// global_pool.h: global average and max pooling. x and dx are (N, C, H, W) seen as P = N*C planes of HW values;
// out, dout and argmax are (P,) ((N, C) to the caller). argmax holds the index h*W + w inside each plane.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// out[p] = mean of plane p (summed in double)
template <typename T>
void global_avgpool_forward(const T* x, T* out, std::int64_t P, std::int64_t HW);

// dx[p, :] = dout[p] / HW
template <typename T>
void global_avgpool_backward(const T* dout, T* dx, std::int64_t P, std::int64_t HW);

// out[p] = max of plane p, argmax[p] its first position (np.argmax: the first NaN if there is one)
template <typename T>
void global_maxpool_forward(const T* x, T* out, std::int64_t* argmax, std::int64_t P, std::int64_t HW);

// dx = 0 except dx[p, argmax[p]] = dout[p]. Returns -1, or the first p whose argmax is outside [0, HW) (that
// plane is left all zero: an index is never trusted).
template <typename T>
std::int64_t global_maxpool_backward(const T* dout, const std::int64_t* argmax, T* dx, std::int64_t P,
                                     std::int64_t HW);

}  // namespace fastconv::cpu
