// cuda_util.cuh: what every CUDA kernel file shares: the error check after each launch, launch geometry for
// element-wise passes, and warp reductions whose order is fixed (a butterfly over the 32 lanes), so that a
// reduction gives the same bits on every run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastconv::cuda {

using i64 = std::int64_t;

// Throws std::runtime_error naming the call and CUDA's message when a runtime call or a launch failed.
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}
#define FC_CUDA_CHECK(call) ::fastconv::cuda::check((call), #call)
// After a kernel launch: a bad configuration is reported at once (asynchronous faults surface at the next sync).
#define FC_CUDA_LAUNCHED(name) ::fastconv::cuda::check(cudaGetLastError(), name)

constexpr int kThreads = 256;

// Blocks for a grid-stride pass over n elements: enough to fill the device, never more than the elements need.
inline unsigned blocks_for(i64 n, int threads = kThreads) {
  const i64 b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// Grid-stride loop over [0, n).
#define FC_GRID_LOOP(i, n)                                                                                    \
  for (::fastconv::cuda::i64 i = static_cast<::fastconv::cuda::i64>(blockIdx.x) * blockDim.x + threadIdx.x; \
       i < (n); i += static_cast<::fastconv::cuda::i64>(blockDim.x) * gridDim.x)

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Max that skips NaN the way the CPU's (v > m ? v : m) does when NaN is the candidate; a NaN already held stays.
template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int off = 16; off > 0; off >>= 1) {
    const T o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}

}  // namespace fastconv::cuda
