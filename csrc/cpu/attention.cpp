// attention.cpp: dot-product attention (layouts in attention.h). Every kernel is parallel over the N
// sequences, each sequence computed by one thread in a fixed order, so results do not depend on the thread
// count. The one-step layers (WeightSum, AttentionWeight) are single passes over hs; TimeAttention makes, per
// sequence, the score GEMM dec @ enc^T, a row softmax (loss.h's softmax_forward) and the context GEMM a @ enc
// with gemm_serial (the caller's thread; the team is spread over sequences), and its backward four GEMMs: dA
// = dout enc^T, dS = A * (dA - rowsum(A * dA)), ddec = dS enc, denc = dS^T dec + A^T dout. float16 / bfloat16
// (cpu/staged.h): rows and per-sequence tiles are widened to float32 as the thread reaches them, every sum,
// the softmax (max subtracted, loss.h's float kernel) and its backward run in float32, and each output row or
// tile is rounded once when it is complete. The backward reads the 16-bit weights a the forward stored (as a
// layer holds them), widened exactly.
#include "cpu/attention.h"

#include <algorithm>
#include <vector>

#include "common/dtype.h"
#include "cpu/gemm/gemm.h"
#include "cpu/loss.h"
#include "cpu/staged.h"
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
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * H >= kParallelMin)
  {
    InTile<T> a_row(S), h_row(H);
    OutTile<T> c_row(H);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      A* cn = c_row.at(c + n * H);
      std::fill(cn, cn + H, A(0));
      const A* an = a_row.load(a + n * S, S);
      for (std::int64_t s = 0; s < S; ++s) {
        const A w = an[s];
        const A* row = h_row.load(hs + (n * S + s) * H, H);  // hs is (N, S, H)
        for (std::int64_t j = 0; j < H; ++j) cn[j] += w * row[j];
      }
      c_row.store(c + n * H, H);
    }
  }
}

template <typename T>
void weight_sum_backward(const T* hs, const T* a, const T* dc, T* dhs, T* da, std::int64_t N, std::int64_t S,
                         std::int64_t H) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * H >= kParallelMin)
  {
    InTile<T> a_row(S), h_row(H), dc_row(H);
    OutTile<T> dh_row(H), da_row(S);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      const A* an = a_row.load(a + n * S, S);
      const A* dcn = dc_row.load(dc + n * H, H);
      A* dan = da_row.at(da + n * S);
      for (std::int64_t s = 0; s < S; ++s) {
        const std::int64_t r = (n * S + s) * H;
        const A w = an[s];
        A* dr = dh_row.at(dhs + r);
        for (std::int64_t j = 0; j < H; ++j) dr[j] = w * dcn[j];
        dh_row.store(dhs + r, H);
        dan[s] = dot(h_row.load(hs + r, H), dcn, H);
      }
      da_row.store(da + n * S, S);
    }
  }
}

template <typename T>
void attention_weight_forward(const T* hs, const T* h, T* a, std::int64_t N, std::int64_t S, std::int64_t H) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * H >= kParallelMin)
  {
    InTile<T> q_row(H), h_row(H);
    OutTile<T> a_row(S);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      A* an = a_row.at(a + n * S);
      const A* hn = q_row.load(h + n * H, H);
      for (std::int64_t s = 0; s < S; ++s) an[s] = dot(h_row.load(hs + (n * S + s) * H, H), hn, H);
      softmax_forward(an, an, 1, S);  // in float for 16-bit types, rounded once below
      a_row.store(a + n * S, S);
    }
  }
}

template <typename T>
void attention_weight_backward(const T* hs, const T* h, const T* a, const T* da, T* dhs, T* dh,
                               std::int64_t N, std::int64_t S, std::int64_t H) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * H >= kParallelMin)
  {
    InTile<T> a_row(S), da_row(S), q_row(H), h_row(H);
    OutTile<T> dq_row(H), dh_row(H);
    std::vector<A> ds(static_cast<std::size_t>(S));  // the thread's dS row, overwritten for every n
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      const A* an = a_row.load(a + n * S, S);
      softmax_row_backward(an, da_row.load(da + n * S, S), ds.data(), S);
      const A* hn = q_row.load(h + n * H, H);
      A* dhn = dq_row.at(dh + n * H);
      std::fill(dhn, dhn + H, A(0));
      for (std::int64_t s = 0; s < S; ++s) {
        const std::int64_t r = (n * S + s) * H;
        const A* hr = h_row.load(hs + r, H);
        A* dr = dh_row.at(dhs + r);
        for (std::int64_t j = 0; j < H; ++j) {
          dr[j] = ds[s] * hn[j];
          dhn[j] += ds[s] * hr[j];
        }
        dh_row.store(dhs + r, H);
      }
      dq_row.store(dh + n * H, H);
    }
  }
}

// -----------------------------------------------------------------------------------------------------------
// every decoder step at once: TimeAttention. 16-bit types: one sequence's enc and dec (and a, dout in the
// backward) are widened into the thread's float tiles, the GEMMs, the softmax and its backward run in
// float32, and a, out, denc, ddec are rounded once when the sequence is done (the scores and dS never leave
// float32).

template <typename T>
void attention_forward(const T* enc, const T* dec, T* a, T* out, std::int64_t N, std::int64_t S,
                       std::int64_t L, std::int64_t H) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * L * H >= kParallelMin)
  {
    InTile<T> e_tile(S * H), d_tile(L * H);
    OutTile<T> a_tile(L * S), o_tile(L * H);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      const A* e = e_tile.load(enc + n * S * H, S * H);  // (S, H)
      const A* d = d_tile.load(dec + n * L * H, L * H);  // (L, H)
      A* an = a_tile.at(a + n * L * S);                   // (L, S)
      A* on = o_tile.at(out + n * L * H);                 // (L, H)
      gemm_serial<A>(L, S, H, A(1), d, H, 1, e, 1, H, A(0), an, S);  // scores: B(k, j) = e[j*H + k]
      softmax_forward(an, an, L, S);
      gemm_serial<A>(L, H, S, A(1), an, S, 1, e, H, 1, A(0), on, H);
      a_tile.store(a + n * L * S, L * S);
      o_tile.store(out + n * L * H, L * H);
    }
  }
}

template <typename T>
void attention_backward(const T* enc, const T* dec, const T* a, const T* dout, T* denc, T* ddec,
                        std::int64_t N, std::int64_t S, std::int64_t L, std::int64_t H) {
  using A = compute_t<T>;
#pragma omp parallel num_threads(num_threads()) if (N * S * L * H >= kParallelMin)
  {
    InTile<T> e_tile(S * H), d_tile(L * H), a_tile(L * S), g_tile(L * H);
    OutTile<T> de_tile(S * H), dd_tile(L * H);
    std::vector<A> ds(static_cast<std::size_t>(L * S));  // dA, then dS in place; overwritten for every n
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      const A* e = e_tile.load(enc + n * S * H, S * H);
      const A* d = d_tile.load(dec + n * L * H, L * H);
      const A* an = a_tile.load(a + n * L * S, L * S);
      const A* g = g_tile.load(dout + n * L * H, L * H);
      gemm_serial<A>(L, S, H, A(1), g, H, 1, e, 1, H, A(0), ds.data(), S);  // dA = dout enc^T
      for (std::int64_t l = 0; l < L; ++l) softmax_row_backward(an + l * S, ds.data() + l * S,
           ds.data() + l * S, S);
      A* dd = dd_tile.at(ddec + n * L * H);
      gemm_serial<A>(L, H, S, A(1), ds.data(), S, 1, e, H, 1, A(0), dd, H);  // ddec = dS enc
      A* de = de_tile.at(denc + n * S * H);
      gemm_serial<A>(S, H, L, A(1), ds.data(), 1, S, d, H, 1, A(0), de, H);  // denc = dS^T dec
      gemm_serial<A>(S, H, L, A(1), an, 1, S, g, H, 1, A(1), de, H);         //      + A^T dout
      dd_tile.store(ddec + n * L * H, L * H);
      de_tile.store(denc + n * S * H, S * H);
    }
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
FC_HALF_TYPES(FC_ATTENTION_INSTANTIATE)
#undef FC_ATTENTION_INSTANTIATE

}  // namespace fastconv::cpu
