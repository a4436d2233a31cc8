// sdpa.cpp: scaled dot-product attention over B independent heads (layouts in sdpa.h). Each head is one
// thread's work in a fixed order (results do not depend on the thread count): the score GEMM scale * q k^T
// written straight into p, a row softmax in place (loss.h's softmax_forward), then the context GEMM p v, all
// with gemm_serial since the team is spread over the heads. Backward, per head: dP = dout v^T (then times the
// dropout mask), dS = P * (dP - rowsum(P * dP)) (the softmax's Jacobian), dq = scale dS k, dk = scale dS^T q,
// dv = (P * mask)^T dout: five GEMMs and two passes over the (L, S) scores, no per-step loop.
#include "cpu/sdpa.h"

#include <vector>

#include "common/dtype.h"
#include "cpu/gemm/gemm.h"
#include "cpu/loss.h"
#include "cpu/threads.h"

namespace fastconv::cpu {

namespace {
// Below this many multiply-adds the heads run on one thread.
constexpr std::int64_t kParallelMin = 1 << 15;
}  // namespace

// -----------------------------------------------------------------------------------------------------------
// kernels

template <typename T>
void sdpa_forward(const T* q, const T* k, const T* v, const T* mask, T* p, T* out, std::int64_t B,
                  std::int64_t L, std::int64_t S, std::int64_t E, std::int64_t F, double scale) {
  const T a = static_cast<T>(scale);
#pragma omp parallel num_threads(num_threads()) if (B * L * S * (E + F) >= kParallelMin)
  {
    std::vector<T> pm(mask ? static_cast<std::size_t>(L * S) : 0);  // p * mask of one head
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const T* qb = q + b * L * E;  // (L, E)
      const T* kb = k + b * S * E;  // (S, E)
      const T* vb = v + b * S * F;  // (S, F)
      T* pb = p + b * L * S;        // (L, S)
      gemm_serial<T>(L, S, E, a, qb, E, 1, kb, 1, E, T(0), pb, S);  // scores: B(e, s) = kb[s*E + e]
      softmax_forward(pb, pb, L, S);
      const T* used = pb;
      if (mask) {
        const T* mb = mask + b * L * S;
        for (std::int64_t i = 0; i < L * S; ++i) pm[i] = pb[i] * mb[i];
        used = pm.data();
      }
      gemm_serial<T>(L, F, S, T(1), used, S, 1, vb, F, 1, T(0), out + b * L * F, F);
    }
  }
}

template <typename T>
void sdpa_backward(const T* q, const T* k, const T* v, const T* p, const T* mask, const T* dout, T* dq, T* dk,
                   T* dv, std::int64_t B, std::int64_t L, std::int64_t S, std::int64_t E, std::int64_t F,
                   double scale) {
  const T a = static_cast<T>(scale);
#pragma omp parallel num_threads(num_threads()) if (B * L * S * (E + F) >= kParallelMin)
  {
    std::vector<T> ds(static_cast<std::size_t>(L * S));  // dP, then dS in place
    std::vector<T> pm(mask ? static_cast<std::size_t>(L * S) : 0);
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const T* qb = q + b * L * E;
      const T* kb = k + b * S * E;
      const T* vb = v + b * S * F;
      const T* pb = p + b * L * S;
      const T* gb = dout + b * L * F;  // (L, F)
      const T* mb = mask ? mask + b * L * S : nullptr;
      gemm_serial<T>(L, S, F, T(1), gb, F, 1, vb, 1, F, T(0), ds.data(), S);  // dP = dout v^T
      const T* used = pb;
      if (mb) {
        for (std::int64_t i = 0; i < L * S; ++i) {
          ds[i] *= mb[i];
          pm[i] = pb[i] * mb[i];
        }
        used = pm.data();
      }
      for (std::int64_t l = 0; l < L; ++l) {
        const T* pr = pb + l * S;
        T* dr = ds.data() + l * S;
        T dot = T(0);
        for (std::int64_t s = 0; s < S; ++s) dot += pr[s] * dr[s];
        for (std::int64_t s = 0; s < S; ++s) dr[s] = pr[s] * (dr[s] - dot);
      }
      gemm_serial<T>(L, E, S, a, ds.data(), S, 1, kb, E, 1, T(0), dq + b * L * E, E);  // dq = scale dS k
      gemm_serial<T>(S, E, L, a, ds.data(), 1, S, qb, E, 1, T(0), dk + b * S * E, E);  // dk = scale dS^T q
      gemm_serial<T>(S, F, L, T(1), used, 1, S, gb, F, 1, T(0), dv + b * S * F, F);    // dv = P^T dout
    }
  }
}

// -----------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_SDPA_INSTANTIATE(T, S_)                                                                           \
  template void sdpa_forward<T>(const T*, const T*, const T*, const T*, T*, T*, std::int64_t, std::int64_t,  \
                                std::int64_t, std::int64_t, std::int64_t, double);                           \
  template void sdpa_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,     \
                                 std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,      \
                                 double);
FC_FLOAT_TYPES(FC_SDPA_INSTANTIATE)
#undef FC_SDPA_INSTANTIATE

}  // namespace fastconv::cpu
