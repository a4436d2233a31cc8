// spatial_batchnorm.h: batch normalisation of x (N, C, H, W) with one mean and variance per channel, taken over
// (N, H, W) (the convolutional networks' batch norm; the book's BatchNormalization, batchnorm.h, normalises each
// of the C*H*W features instead). The kernels see x as (N, C, HW) row-major. gamma, beta, running_mean and
// running_var are (C,) of T; the saved batch statistics mean and invstd are (C,) of double, so that backward
// recomputes xhat = (x - mean) * invstd exactly as the forward used it.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// Per channel c over M = N*HW values: mean, var = mean((x - mean)^2) (biased, as the book's), invstd =
// 1/sqrt(var + eps); out = gamma * (x - mean) * invstd + beta. running_{mean,var} = momentum * running +
// (1 - momentum) * {mean, var}, in place.
template <typename T>
void spatial_batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                                     T* out, double* mean, double* invstd, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double momentum, double eps);

// out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
template <typename T>
void spatial_batchnorm_forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean,
                                     const T* running_var, T* out, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double eps);

// Gradients of the training forward: dbeta = sum dout; dgamma = sum dout * xhat;
// dx = gamma * invstd / M * (M * dout - dbeta - xhat * dgamma), with xhat = (x - mean) * invstd.
template <typename T>
void spatial_batchnorm_backward(const T* dout, const T* x, const double* mean, const double* invstd,
                                const T* gamma, T* dx, T* dgamma, T* dbeta, std::int64_t N, std::int64_t C,
                                std::int64_t HW);

}  // namespace fastconv::cpu
