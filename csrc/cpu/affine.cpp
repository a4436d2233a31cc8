// affine.cpp: out = x @ W + b (bias written first, GEMM accumulates onto it); backward dx = dout @ W^T,
// dW = x^T @ dout (transposes are strides, no copies), db = column sums of dout (each column summed over
// the batch in order by one thread, so results do not depend on the thread count; the columns are split over
// the threads).
#include "cpu/affine.h"

#include <algorithm>

#include "common/dtype.h"

namespace fastconv::cpu {

namespace {
constexpr index_t kParallelMin = 1 << 16;  // elements below which the bias fill and db stay on one thread
}  // namespace

template <typename T>
void affine_forward(const T* x, const T* w, const T* b, T* out, index_t N, index_t D, index_t H, bool trans_w,
                    int nthreads) {
  using C = compute_t<T>;
  // the GEMM adds its product to the bias in C's compute type and rounds once (f16 / bf16: in float32)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * H >= kParallelMin)
  for (index_t n = 0; n < N; ++n) std::copy(b, b + H, out + n * H);
  // B(k=d, j=h) = W[d][h]: w[d*H + h], or w[h*D + d] when w holds W^T
  gemm<T>(N, H, D, C(1), x, D, 1, w, trans_w ? 1 : H, trans_w ? D : 1, C(1), out, H, nthreads);
}

template <typename T>
void affine_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, index_t N, index_t D, index_t H,
                     bool trans_w, int nthreads) {
  using C = compute_t<T>;
  // B(k=h, j=d) = W[d][h]: w[d*H + h], or w[h*D + d] when w holds W^T
  gemm<T>(N, D, H, C(1), dout, H, 1, w, trans_w ? D : 1, trans_w ? 1 : H, C(0), dx, D, nthreads);
  gemm<T>(D, H, N, C(1), x, 1, D, dout, H, 1, C(0), dw, H, nthreads);   // A(i=d, k=n) = x[n*D + d]
  // column sums in C (float for the 16-bit types), rows in order, one rounding per sum; blocks of columns
  // spread over the threads (each column is summed by one thread in the same order: the same bits)
  constexpr index_t HB = 256;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (N * H >= kParallelMin)
  for (index_t h0 = 0; h0 < H; h0 += HB) {
    const index_t nh = std::min(HB, H - h0);
    C acc[HB] = {};
    for (index_t n = 0; n < N; ++n) {
      const T* row = dout + n * H + h0;
      for (index_t h = 0; h < nh; ++h) acc[h] += to_compute(row[h]);
    }
    for (index_t h = 0; h < nh; ++h) db[h0 + h] = from_compute<T>(acc[h]);
  }
}

#define FC_AFFINE_INSTANTIATE(T, S)                                                                      \
  template void affine_forward<T>(const T*, const T*, const T*, T*, index_t, index_t, index_t, bool, int);  \
  template void affine_backward<T>(const T*, const T*, const T*, T*, T*, T*, index_t, index_t, index_t, bool, \
                                   int);
FC_FLOAT_TYPES(FC_AFFINE_INSTANTIATE)
FC_HALF_TYPES(FC_AFFINE_INSTANTIATE)
FC_POLICY_TYPES(FC_AFFINE_INSTANTIATE)
#undef FC_AFFINE_INSTANTIATE

}  // namespace fastconv::cpu
