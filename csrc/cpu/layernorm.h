// layernorm.h: layer normalisation over the last axis (Ba, Kiros & Hinton 2016), as Keras' LayerNormalization
// and torch.nn.LayerNorm compute it: x (M, D) row-major, each row normalised by its own mean and biased
// variance, then scaled by gamma (D,) and shifted by beta (D,). mean and rstd = 1 / sqrt(var + eps) are (M,).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* out, T* mean, T* rstd, std::int64_t M,
                       std::int64_t D, double eps);

// dx (M, D), dgamma (D,), dbeta (D,) are overwritten.
template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dout, T* dx,
                        T* dgamma, T* dbeta, std::int64_t M, std::int64_t D);

}  // namespace fastconv::cpu
