// attention.cpp: dot-product attention (layouts in attention.h). Every kernel is parallel over the N
// sequences, each sequence computed by one thread in a fixed order, so results do not depend on the thread
// count. The one-step layers (WeightSum, AttentionWeight) are single passes over hs; TimeAttention makes, per
// sequence, the score GEMM dec @ enc^T, a row softmax (loss.h's softmax_forward) and the context GEMM a @ enc
// with gemm_serial (the caller's thread; the team is spread over sequences), and its backward four GEMMs: dA
// = dout enc^T, dS = A * (dA - rowsum(A * dA)), ddec = dS enc, denc = dS^T dec + A^T dout.
#include "cpu/attention.h"

#include <algorithm>
#include <vector>

#include "common/dtype.h"
#include "cpu/gemm/gemm.h"
#include "cpu/loss.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {
constexpr std::int64_t kParallelMin = 1 << 14;

template <typename T>
inline T dot(const T* x, const T* y, std::int64_t n) {
  T s = T(0);
  for (std::int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// ds = a * (da - sum(a * da)) over one row of S: the softmax's backward.
template <typename T>
inline void softmax_row_backward(const T* a, const T* da, T* ds, std::int64_t S) {
  T s = T(0);
  for (std::int64_t k = 0; k < S; ++k) s += a[k] * da[k];
  for (std::int64_t k = 0; k < S; ++k) ds[k] = a[k] * (da[k] - s);
}
}  // namespace

// -----------------------------------------------------------------------------------------------------------
// one decoder step: WeightSum and AttentionWeight

template <typename T>
void weight_sum_forward(const T* hs, const T* a, T* c, std::int64_t N, std::int64_t S, std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    T* cn = c + n * H;
    std::fill(cn, cn + H, T(0));
    for (std::int64_t s = 0; s < S; ++s) {
      const T w = a[n * S + s];
      const T* row = hs + (n * S + s) * H;  // hs is (N, S, H)
      for (std::int64_t j = 0; j < H; ++j) cn[j] += w * row[j];
    }
  }
}

template <typename T>
void weight_sum_backward(const T* hs, const T* a, const T* dc, T* dhs, T* da, std::int64_t N, std::int64_t S,
                         std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t s = 0; s < S; ++s) {
      const std::int64_t r = (n * S + s) * H;
      const T w = a[n * S + s];
      for (std::int64_t j = 0; j < H; ++j) dhs[r + j] = w * dc[n * H + j];
      da[n * S + s] = dot(hs + r, dc + n * H, H);
    }
}

template <typename T>
void attention_weight_forward(const T* hs, const T* h, T* a, std::int64_t N, std::int64_t S, std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    T* an = a + n * S;
    for (std::int64_t s = 0; s < S; ++s) an[s] = dot(hs + (n * S + s) * H, h + n * H, H);
    softmax_forward(an, an, 1, S);
  }
}

template <typename T>
void attention_weight_backward(const T* hs, const T* h, const T* a, const T* da, T* dhs, T* dh,
                               std::int64_t N, std::int64_t S, std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    std::vector<T> ds(static_cast<std::size_t>(S));
    softmax_row_backward(a + n * S, da + n * S, ds.data(), S);
    T* dhn = dh + n * H;
    std::fill(dhn, dhn + H, T(0));
    for (std::int64_t s = 0; s < S; ++s) {
      const std::int64_t r = (n * S + s) * H;
      for (std::int64_t j = 0; j < H; ++j) {
        dhs[r + j] = ds[s] * h[n * H + j];
        dhn[j] += ds[s] * hs[r + j];
      }
    }
  }
}

// -----------------------------------------------------------------------------------------------------------
// every decoder step at once: TimeAttention

template <typename T>
void attention_forward(const T* enc, const T* dec, T* a, T* out, std::int64_t N, std::int64_t S,
                       std::int64_t L, std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * L * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* e = enc + n * S * H;  // (S, H)
    const T* d = dec + n * L * H;  // (L, H)
    T* an = a + n * L * S;         // (L, S)
    gemm_serial<T>(L, S, H, T(1), d, H, 1, e, 1, H, T(0), an, S);  // scores: B(k, j) = e[j*H + k]
    softmax_forward(an, an, L, S);
    gemm_serial<T>(L, H, S, T(1), an, S, 1, e, H, 1, T(0), out + n * L * H, H);
  }
}

template <typename T>
void attention_backward(const T* enc, const T* dec, const T* a, const T* dout, T* denc, T* ddec,
                        std::int64_t N, std::int64_t S, std::int64_t L, std::int64_t H) {
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (N * S * L * H >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* e = enc + n * S * H;
    const T* d = dec + n * L * H;
    const T* an = a + n * L * S;
    const T* g = dout + n * L * H;
    std::vector<T> ds(static_cast<std::size_t>(L * S));  // dA, then dS in place
    gemm_serial<T>(L, S, H, T(1), g, H, 1, e, 1, H, T(0), ds.data(), S);  // dA = dout enc^T
    for (std::int64_t l = 0; l < L; ++l) softmax_row_backward(an + l * S, ds.data() + l * S,
         ds.data() + l * S, S);
    gemm_serial<T>(L, H, S, T(1), ds.data(), S, 1, e, H, 1, T(0), ddec + n * L * H, H);  // ddec = dS enc
    T* de = denc + n * S * H;
    gemm_serial<T>(S, H, L, T(1), ds.data(), 1, S, d, H, 1, T(0), de, H);  // denc = dS^T dec
    gemm_serial<T>(S, H, L, T(1), an, 1, S, g, H, 1, T(1), de, H);         //      + A^T dout
  }
}

#define FC_ATTENTION_INSTANTIATE(T, S_)                                                                      \
  template void weight_sum_forward<T>(const T*, const T*, T*, std::int64_t, std::int64_t, std::int64_t);     \
  template void weight_sum_backward<T>(const T*, const T*, const T*, T*, T*, std::int64_t, std::int64_t,     \
                                       std::int64_t);                                                        \
  template void attention_weight_forward<T>(const T*, const T*, T*, std::int64_t, std::int64_t,              \
                                            std::int64_t);                                                   \
  template void attention_weight_backward<T>(const T*, const T*, const T*, const T*, T*, T*, std::int64_t,   \
                                             std::int64_t, std::int64_t);                                    \
  template void attention_forward<T>(const T*, const T*, T*, T*, std::int64_t, std::int64_t, std::int64_t,   \
                                     std::int64_t);                                                          \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, T*, T*, std::int64_t,          \
                                      std::int64_t, std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_ATTENTION_INSTANTIATE)
#undef FC_ATTENTION_INSTANTIATE

}  // namespace fastconv::cpu
