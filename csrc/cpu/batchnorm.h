// batchnorm.h: batch normalisation over the rows of x (N, D) row-major, with per-column statistics
// (the book's BatchNormalization after its 4-D input is reshaped to (N, D)). gamma, beta, running_mean,
// running_var and std are (D,); x, out, xc, xn, dout, dx are (N, D). Column sums are accumulated in double.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// mu = mean_n x; xc = x - mu; var = mean_n xc^2; std = sqrt(var + eps); xn = xc / std;
// out = gamma * xn + beta; running_{mean,var} = momentum * running + (1 - momentum) * {mu, var} (in place).
template <typename T>
void batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var, T* out,
                             T* xc, T* xn, T* stdev, std::int64_t N, std::int64_t D, double momentum,
                             double eps);

// out = gamma * ((x - running_mean) / sqrt(running_var + eps)) + beta
template <typename T>
void batchnorm_forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean,
                             const T* running_var, T* out, std::int64_t N, std::int64_t D, double eps);

// The book's backward: dbeta = sum dout; dgamma = sum xn*dout; dxn = gamma*dout; dxc = dxn/std;
// dstd = -sum (dxn*xc)/(std*std); dvar = 0.5*dstd/std; dxc += (2/N)*xc*dvar; dmu = sum dxc; dx = dxc - dmu/N.
template <typename T>
void batchnorm_backward(const T* dout, const T* xc, const T* xn, const T* stdev, const T* gamma, T* dx,
                        T* dgamma, T* dbeta, std::int64_t N, std::int64_t D);

}  // namespace fastconv::cpu
