// dropout.cu: dropout forward and backward with the CPU's counter-based draw (common/dropout_hash.h): one seed
// gives the same mask here and in csrc/cpu/dropout.cpp, whatever the launch geometry.
#include "common/dropout_hash.h"
#include "common/dtype.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

template <typename T>
__global__ void dropout_forward_k(const T* x, T* out, std::uint8_t* mask, i64 n, double ratio, std::uint64_t key) {
  FC_GRID_LOOP(i, n) {
    const std::uint8_t keep = dropout_hash::draw(key, i) > ratio ? 1 : 0;
    mask[i] = keep;
    out[i] = x[i] * static_cast<T>(keep);  // a product, not a select: NaN * 0 = NaN as on the CPU
  }
}

template <typename T>
__global__ void dropout_backward_k(const T* dout, const std::uint8_t* mask, T* dx, i64 n) {
  FC_GRID_LOOP(i, n) dx[i] = dout[i] * static_cast<T>(mask[i] != 0 ? 1 : 0);
}

}  // namespace

template <typename T>
void dropout_forward(const T* x, T* out, std::uint8_t* mask, i64 n, double ratio, std::uint64_t seed) {
  if (n == 0) return;
  dropout_forward_k<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, out, mask, n, ratio, dropout_hash::stream_key(seed));
  FC_CUDA_LAUNCHED("dropout_forward");
}

template <typename T>
void dropout_backward(const T* dout, const std::uint8_t* mask, T* dx, i64 n) {
  if (n == 0) return;
  dropout_backward_k<T><<<blocks_for(n), kThreads, 0, stream()>>>(dout, mask, dx, n);
  FC_CUDA_LAUNCHED("dropout_backward");
}

#define FC_DROPOUT_INSTANTIATE(T, S)                                                                \
  template void dropout_forward<T>(const T*, T*, std::uint8_t*, i64, double, std::uint64_t); \
  template void dropout_backward<T>(const T*, const std::uint8_t*, T*, i64);
FC_FLOAT_TYPES(FC_DROPOUT_INSTANTIATE)
#undef FC_DROPOUT_INSTANTIATE

}  // namespace fastconv::cuda
