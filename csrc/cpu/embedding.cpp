// embedding.cpp: gather of table rows, and its adjoint, the scatter-add of gradient rows into a zeroed table.
// The gather is parallel over ids. The scatter-add is parallel over column blocks of D: each thread adds
// every row m, in order, into its own columns, so repeated ids never race and the sums do not depend on the
// thread count (no atomics, no per-thread copies of the table). float16 / bfloat16: the gather copies the bits;
// the scatter-add sums each column block in a per-thread float32 block of the table (V x 16) and rounds once.
#include "cpu/embedding.h"

#include <algorithm>
#include <vector>

#include "common/dtype.h"
#include "cpu/half_convert.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {
// Below this many copied elements one thread is faster than a fork/join.
constexpr std::int64_t kParallelMin = 1 << 15;
// Columns per block of the scatter-add: 16 floats fill a 64-byte cache line, so no two threads share one.
constexpr std::int64_t kColBlock = 16;
}  // namespace

template <typename T>
void embedding_forward(const T* w, const std::int64_t* idx, T* out, std::int64_t M, std::int64_t D) {
  // w is (V, D), out is (M, D)
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (M * D >= kParallelMin)
  for (std::int64_t m = 0; m < M; ++m) std::copy(w + idx[m] * D, w + (idx[m] + 1) * D, out + m * D);
}

template <typename T>
void embedding_backward(const T* dout, const std::int64_t* idx, T* dw, std::int64_t M, std::int64_t V,
                        std::int64_t D) {
  const std::int64_t VD = V * D;
  const std::int64_t blocks = (D + kColBlock - 1) / kColBlock;
  if constexpr (is_half_v<T>) {
#pragma omp parallel num_threads(num_threads()) if (M * D >= kParallelMin && blocks > 1)
    {
      std::vector<float> acc(static_cast<std::size_t>(V * kColBlock));  // (V, w) sums of one column block
#pragma omp for schedule(static)
      for (std::int64_t cb = 0; cb < blocks; ++cb) {
        const std::int64_t j0 = cb * kColBlock, w = std::min(D, j0 + kColBlock) - j0;
        std::fill(acc.begin(), acc.begin() + V * w, 0.0f);
        for (std::int64_t m = 0; m < M; ++m) {
          float* row = acc.data() + idx[m] * w;
          const T* g = dout + m * D + j0;
          for (std::int64_t j = 0; j < w; ++j) row[j] += to_compute(g[j]);
        }
        for (std::int64_t v = 0; v < V; ++v) store_row(acc.data() + v * w, dw + v * D + j0, w);
      }
    }
  } else {
    simd_for(VD, kParallelMin, [&](std::int64_t i) { dw[i] = T(0); });
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (M * D >= kParallelMin && blocks > 1)
    for (std::int64_t cb = 0; cb < blocks; ++cb) {
      const std::int64_t j0 = cb * kColBlock, j1 = std::min(D, j0 + kColBlock);
      for (std::int64_t m = 0; m < M; ++m) {
        T* row = dw + idx[m] * D;  // dw is (V, D); dout is (M, D)
        const T* g = dout + m * D;
        for (std::int64_t j = j0; j < j1; ++j) row[j] += g[j];
      }
    }
  }
}

#define FC_EMBEDDING_INSTANTIATE(T, S)                                                                   \
  template void embedding_forward<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t);    \
  template void embedding_backward<T>(const T*, const std::int64_t*, T*, std::int64_t, std::int64_t,    \
                                      std::int64_t);
FC_FLOAT_TYPES(FC_EMBEDDING_INSTANTIATE)
FC_HALF_TYPES(FC_EMBEDDING_INSTANTIATE)
#undef FC_EMBEDDING_INSTANTIATE

}  // namespace fastconv::cpu
