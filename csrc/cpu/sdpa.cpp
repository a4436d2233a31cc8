// sdpa.cpp: scaled dot-product attention over B independent heads (layouts in sdpa.h). Each head is one
// thread's work in a fixed order (results do not depend on the thread count): the score GEMM scale * q k^T
// written straight into p, a row softmax in place (loss.h's softmax_forward), then the context GEMM p v, all
// with gemm_serial since the team is spread over the heads. Backward, per head: dP = dout v^T (then times the
// dropout mask), dS = P * (dP - rowsum(P * dP)) (the softmax's Jacobian), dq = scale dS k, dk = scale dS^T q,
// dv = (P * mask)^T dout: five GEMMs and two passes over the (L, S) scores, no per-step loop. float16 /
// bfloat16 (cpu/staged.h): each head's q, k, v (mask, p, dout) are widened into the thread's float tiles when
// its turn comes, the GEMMs, the softmax (max subtracted) and dS run in float32 (the scores, p * mask and dS
// never leave float32), and p, out, dq, dk, dv are rounded once when the head is done. The backward reads the
// 16-bit p the forward stored, widened exactly.
#include "cpu/sdpa.h"

#include <vector>

#include "common/dtype.h"
#include "cpu/gemm/gemm.h"
#include "cpu/loss.h"
#include "cpu/staged.h"
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
  using A = compute_t<T>;
  const A a = static_cast<A>(scale);
#pragma omp parallel num_threads(num_threads()) if (B * L * S * (E + F) >= kParallelMin)
  {
    std::vector<A> pm(mask ? static_cast<std::size_t>(L * S) : 0);  // p * mask of one head
    InTile<T> q_tile(L * E), k_tile(S * E), v_tile(S * F), m_tile(mask ? L * S : 0);
    OutTile<T> p_tile(L * S), o_tile(L * F);
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const A* qb = q_tile.load(q + b * L * E, L * E);  // (L, E)
      const A* kb = k_tile.load(k + b * S * E, S * E);  // (S, E)
      const A* vb = v_tile.load(v + b * S * F, S * F);  // (S, F)
      A* pb = p_tile.at(p + b * L * S);                  // (L, S)
      gemm_serial<A>(L, S, E, a, qb, E, 1, kb, 1, E, A(0), pb, S);  // scores: B(e, s) = kb[s*E + e]
      softmax_forward(pb, pb, L, S);
      const A* used = pb;
      if (mask) {
        const A* mb = m_tile.load(mask + b * L * S, L * S);
        for (std::int64_t i = 0; i < L * S; ++i) pm[i] = pb[i] * mb[i];
        used = pm.data();
      }
      A* ob = o_tile.at(out + b * L * F);
      gemm_serial<A>(L, F, S, A(1), used, S, 1, vb, F, 1, A(0), ob, F);
      p_tile.store(p + b * L * S, L * S);
      o_tile.store(out + b * L * F, L * F);
    }
  }
}

template <typename T>
void sdpa_backward(const T* q, const T* k, const T* v, const T* p, const T* mask, const T* dout, T* dq, T* dk,
                   T* dv, std::int64_t B, std::int64_t L, std::int64_t S, std::int64_t E, std::int64_t F,
                   double scale) {
  using A = compute_t<T>;
  const A a = static_cast<A>(scale);
#pragma omp parallel num_threads(num_threads()) if (B * L * S * (E + F) >= kParallelMin)
  {
    std::vector<A> ds(static_cast<std::size_t>(L * S));  // dP, then dS in place
    std::vector<A> pm(mask ? static_cast<std::size_t>(L * S) : 0);
    InTile<T> q_tile(L * E), k_tile(S * E), v_tile(S * F), p_tile(L * S), m_tile(mask ? L * S : 0),
        g_tile(L * F);
    OutTile<T> dq_tile(L * E), dk_tile(S * E), dv_tile(S * F);
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const A* qb = q_tile.load(q + b * L * E, L * E);
      const A* kb = k_tile.load(k + b * S * E, S * E);
      const A* vb = v_tile.load(v + b * S * F, S * F);
      const A* pb = p_tile.load(p + b * L * S, L * S);
      const A* gb = g_tile.load(dout + b * L * F, L * F);  // (L, F)
      const A* mb = mask ? m_tile.load(mask + b * L * S, L * S) : nullptr;
      gemm_serial<A>(L, S, F, A(1), gb, F, 1, vb, 1, F, A(0), ds.data(), S);  // dP = dout v^T
      const A* used = pb;
      if (mb) {
        for (std::int64_t i = 0; i < L * S; ++i) {
          ds[i] *= mb[i];
          pm[i] = pb[i] * mb[i];
        }
        used = pm.data();
      }
      for (std::int64_t l = 0; l < L; ++l) {
        const A* pr = pb + l * S;
        A* dr = ds.data() + l * S;
        A dot = A(0);
        for (std::int64_t s = 0; s < S; ++s) dot += pr[s] * dr[s];
        for (std::int64_t s = 0; s < S; ++s) dr[s] = pr[s] * (dr[s] - dot);
      }
      A* dqb = dq_tile.at(dq + b * L * E);
      A* dkb = dk_tile.at(dk + b * S * E);
      A* dvb = dv_tile.at(dv + b * S * F);
      gemm_serial<A>(L, E, S, a, ds.data(), S, 1, kb, E, 1, A(0), dqb, E);  // dq = scale dS k
      gemm_serial<A>(S, E, L, a, ds.data(), 1, S, qb, E, 1, A(0), dkb, E);  // dk = scale dS^T q
      gemm_serial<A>(S, F, L, A(1), used, 1, S, gb, F, 1, A(0), dvb, F);    // dv = P^T dout
      dq_tile.store(dq + b * L * E, L * E);
      dk_tile.store(dk + b * S * E, S * E);
      dv_tile.store(dv + b * S * F, S * F);
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
FC_HALF_TYPES(FC_SDPA_INSTANTIATE)
#undef FC_SDPA_INSTANTIATE

}  // namespace fastconv::cpu
