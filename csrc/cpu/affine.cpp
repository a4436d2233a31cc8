// affine.cpp: out = x @ W + b (bias written first, GEMM accumulates onto it); backward dx = dout @ W^T,
// dW = x^T @ dout (transposes are strides, no copies), db = column sums of dout (each column summed over
// the batch in order by one thread, so results do not depend on the thread count).
#include "cpu/affine.h"

#include <algorithm>

#include "common/dtype.h"

namespace fastconv::cpu {

template <typename T>
void affine_forward(const T* x, const T* w, const T* b, T* out, index_t N, index_t D, index_t H, int nthreads) {
  for (index_t n = 0; n < N; ++n) std::copy(b, b + H, out + n * H);
  gemm<T>(N, H, D, T(1), x, D, 1, w, H, 1, T(1), out, H, nthreads);
}

template <typename T>
void affine_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, index_t N, index_t D, index_t H,
                     int nthreads) {
  gemm<T>(N, D, H, T(1), dout, H, 1, w, 1, H, T(0), dx, D, nthreads);   // B(k=h, j=d) = w[d*H + h]
  gemm<T>(D, H, N, T(1), x, 1, D, dout, H, 1, T(0), dw, H, nthreads);   // A(i=d, k=n) = x[n*D + d]
  std::fill(db, db + H, T(0));
  for (index_t n = 0; n < N; ++n)
    for (index_t h = 0; h < H; ++h) db[h] += dout[n * H + h];
}

#define FC_AFFINE_INSTANTIATE(T, S)                                                                      \
  template void affine_forward<T>(const T*, const T*, const T*, T*, index_t, index_t, index_t, int);       \
  template void affine_backward<T>(const T*, const T*, const T*, T*, T*, T*, index_t, index_t, index_t, int);
FC_FLOAT_TYPES(FC_AFFINE_INSTANTIATE)
#undef FC_AFFINE_INSTANTIATE

}  // namespace fastconv::cpu
