// dropout.h: dropout as in the book (no 1/(1-ratio) scaling at train time), elementwise on
// contiguous 1-D arrays of length n. mask is one byte per element (numpy bool), read as "nonzero = keep".
// The random draw of element i is counter based, u(seed, i) = (splitmix64(splitmix64(seed) + (i+1)*G) >> 11)
// * 2^-53 with G = 0x9E3779B97F4A7C15, so the mask depends only on (seed, i), never on the thread count.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// Uniform double in [0, 1) for element i under seed (the draw dropout_forward uses).
double dropout_uniform(std::uint64_t seed, std::int64_t i);

// mask[i] = u(seed, i) > ratio; out[i] = x[i] * T(mask[i]) (so NaN * 0 = NaN, as NumPy's x * mask).
template <typename T>
void dropout_forward(const T* x, T* out, std::uint8_t* mask, std::int64_t n, double ratio, std::uint64_t seed);

// dx[i] = dout[i] * T(mask[i] != 0)
template <typename T>
void dropout_backward(const T* dout, const std::uint8_t* mask, T* dx, std::int64_t n);

}  // namespace fastconv::cpu
