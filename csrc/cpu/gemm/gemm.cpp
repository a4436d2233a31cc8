// gemm.cpp: the GEMM driver (loops 5, 4, 3 of BLIS), per-thread packing workspaces and the run-time choice
// of micro-kernel. C(M x N, row-major, ldc) = alpha * A(M x K) B(K x N) + beta * C with strided A and B.
// Packing buffers come from the per-thread workspace (workspace.h): no static buffers, no allocation on the
// hot path after the first call.
#include "cpu/gemm/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/dtype.h"
#include "cpu/gemm/config.h"
#include "cpu/isa.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {
using namespace gemm_config;

// ------------------------------------------------------------------------------------------------------
// micro-kernel dispatch (the ISA in use: cpu/isa.h)

// The registry of micro-kernels per element type, indexed by Isa (unbuilt ISAs fall back to the portable one);
// float's AVX-512 entry is one of two tiles (isa.h: avx512_tile).
#if FASTCONV_HAVE_X86_UKR
#define FC_UKR_TABLE(SUF) {ukr_ref_##SUF(), ukr_avx2_##SUF(), ukr_avx512_##SUF()}
#define FC_UKR_WIDE_F32 ukr_avx512w_f32()
#else
#define FC_UKR_TABLE(SUF) {ukr_ref_##SUF(), ukr_ref_##SUF(), ukr_ref_##SUF()}
#define FC_UKR_WIDE_F32 ukr_ref_f32()
#endif

template <>
const Ukr<float>& active_ukr<float>() {
  static const Ukr<float> table[3] = FC_UKR_TABLE(f32);
  static const Ukr<float> wide = FC_UKR_WIDE_F32;
  const Isa isa = active_isa();
  return isa == Isa::avx512 && avx512_tile() == Avx512Tile::t12x32 ? wide : table[static_cast<int>(isa)];
}
template <>
const Ukr<double>& active_ukr<double>() {
  static const Ukr<double> table[3] = FC_UKR_TABLE(f64);
  return table[static_cast<int>(active_isa())];
}
#undef FC_UKR_WIDE_F32
#undef FC_UKR_TABLE

// ------------------------------------------------------------------------------------------------------
// driver

// The K block of a GEMM with this K: at most KC, the K blocks as equal as possible (K = 1024 with KC = 768:
// 512 + 512 rather than 768 + 256, whose short block pays the packing and the C update of a full one for a
// third of the work). Serial and parallel paths use the same blocks: same bits for any thread count.
template <typename T>
index_t k_block(index_t K) {
  constexpr index_t KC = Blocks<T>::KC;
  const index_t nb = (K + KC - 1) / KC;
  return std::min(KC, round_up((K + nb - 1) / nb, 8));
}

template <typename T>
void gemm_serial(index_t M, index_t N, index_t K, compute_t<T> alpha, const T* A, index_t rsa, index_t csa,
                 const T* B, index_t rsb, index_t csb, compute_t<T> beta, T* C, index_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {  // C = beta * C, without reading C when beta == 0
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  const Ukr<T>& u = active_ukr<T>();
  constexpr index_t MC = Blocks<T>::MC, NC = Blocks<T>::NC;
  const index_t KC = k_block<T>(K);
  const index_t nc_max = std::min<index_t>(NC, ((N + u.nr - 1) / u.nr) * u.nr);
  const index_t mc_max = std::min<index_t>(((MC + u.mr - 1) / u.mr) * u.mr, ((M + u.mr - 1) / u.mr) * u.mr);
  const index_t kc_max = std::min<index_t>(KC, K);
  T* bpack = thread_workspace<T>(WS_GEMM_B, static_cast<std::size_t>(kc_max * nc_max));
  T* apack = thread_workspace<T>(WS_GEMM_A, static_cast<std::size_t>(kc_max * mc_max));

  // loop 5 around micro-kernel: jc += NC
  for (index_t jc = 0; jc < N; jc += NC) {
    const index_t nc = std::min<index_t>(NC, N - jc);
    // loop 4 around micro-kernel: pc += KC
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = std::min<index_t>(KC, K - pc);
      const T beta_pc = pc == 0 ? beta : T(1);  // later K blocks accumulate into C
      pack_b_kc_nc<T>(kc, nc, B + pc * rsb + jc * csb, rsb, csb, u.nr, bpack);
      // loop 3 around micro-kernel: ic += MC
      for (index_t ic = 0; ic < M; ic += mc_max) {
        const index_t mc = std::min<index_t>(mc_max, M - ic);
        pack_a_mc_kc<T>(mc, kc, A + ic * rsa + pc * csa, rsa, csa, u.mr, apack);
        macro_kernel<T>(u, mc, nc, kc, alpha, apack, bpack, beta_pc, C + ic * ldc + jc, ldc);
      }  // end loop 3
    }    // end loop 4
  }      // end loop 5
}

// The calling thread's share [lo, hi) of `count` items split evenly over the OpenMP team it is in.
struct TeamShare {
  index_t lo, hi;
};
inline TeamShare team_share(index_t count) {
#ifdef _OPENMP
  const index_t t = omp_get_thread_num(), n = omp_get_num_threads();
#else
  const index_t t = 0, n = 1;
#endif
  return {count * t / n, count * (t + 1) / n};
}

// Rows of C split across the team, the B panel packed once per (jc, pc) by all threads together (BLIS's
// scheme for loop 3): each thread packs a share of the NR slivers into one shared buffer, a barrier, then the
// threads take MC_PAR-row blocks of C from a shared counter (a dynamic schedule: a core slowed by another
// tenant of the host takes fewer blocks instead of making the other wait at the barrier) and multiply them
// by the whole panel. Packing B per thread instead (the split-N path below) costs every thread the full
// panel's packing and its L3 traffic: measured SGEMM 1024^3 on 2 threads 111 GFLOP/s (54% of peak) that way.
// Per element of C the K blocks and the micro-kernel are those of gemm_serial, so the result is
// bit-identical for any thread count.
template <typename T>
void gemm_parallel_m(int nt, index_t M, index_t N, index_t K, T alpha, const T* A, index_t rsa, index_t csa,
                     const T* B, index_t rsb, index_t csb, T beta, T* C, index_t ldc) {
  const Ukr<T>& u = active_ukr<T>();
  constexpr index_t NC = Blocks<T>::NC;
  const index_t KC = k_block<T>(K);
  const index_t nc_max = std::min(NC, round_up(N, u.nr));
  const index_t kc_max = std::min<index_t>(KC, K);
  // at least about 4 blocks per thread, so a short M (an affine layer's batch of 100) still evens out
  const index_t mc_max = std::min(round_up(MC_PAR, u.mr), round_up((M + 4 * nt - 1) / (4 * nt), u.mr));
  const index_t mblocks = (M + mc_max - 1) / mc_max;
  // the calling thread's arena holds the shared panel; the team only reads it between the barriers
  T* bpack = thread_workspace<T>(WS_GEMM_B, static_cast<std::size_t>(kc_max * nc_max));
#pragma omp parallel num_threads(nt)
  {
    T* apack = thread_workspace<T>(WS_GEMM_A, static_cast<std::size_t>(kc_max * mc_max));
    // loop 5 around micro-kernel: jc += NC
    for (index_t jc = 0; jc < N; jc += NC) {
      const index_t nc = std::min<index_t>(NC, N - jc);
      const TeamShare sl = team_share((nc + u.nr - 1) / u.nr);  // this thread's NR slivers of the panel
      const index_t s0 = sl.lo, s1 = sl.hi;
      // loop 4 around micro-kernel: pc += KC
      for (index_t pc = 0; pc < K; pc += KC) {
        const index_t kc = std::min<index_t>(KC, K - pc);
        const T beta_pc = pc == 0 ? beta : T(1);
        // this thread's slivers s0..s1 of the kc x nc panel; sliver s starts at bpack + s*nr*kc (pack.cpp)
        if (s1 > s0)
          pack_b_kc_nc<T>(kc, std::min<index_t>(s1 * u.nr, nc) - s0 * u.nr, B + pc * rsb + (jc + s0 * u.nr) * csb,
                          rsb, csb, u.nr, bpack + s0 * u.nr * kc);
#pragma omp barrier
        // loop 3 around micro-kernel: ic += MC_PAR, blocks taken dynamically; the loop's closing barrier
        // keeps the panel from being repacked before every thread is done reading it
#pragma omp for schedule(dynamic, 1)
        for (index_t blk = 0; blk < mblocks; ++blk) {
          const index_t ic = blk * mc_max, mc = std::min<index_t>(mc_max, M - ic);
          pack_a_mc_kc<T>(mc, kc, A + ic * rsa + pc * csa, rsa, csa, u.mr, apack);
          macro_kernel<T>(u, mc, nc, kc, alpha, apack, bpack, beta_pc, C + ic * ldc + jc, ldc);
        }  // end loop 3
      }    // end loop 4
    }      // end loop 5
  }
}

template <typename T>
void gemm(index_t M, index_t N, index_t K, compute_t<T> alpha, const T* A, index_t rsa, index_t csa, const T* B,
          index_t rsb, index_t csb, compute_t<T> beta, T* C, index_t ldc, int nthreads) {
  const double macs = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (nthreads <= 1 || macs < static_cast<double>(PARALLEL_MIN_MACS)) {
    gemm_serial<T>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc);
    return;
  }
  const Ukr<T>& u = active_ukr<T>();
  // Split the longer side of C into equal, tile-aligned ranges, one per thread: rows with a shared B panel
  // (gemm_parallel_m); columns with each thread packing its own share of B and the whole A blocks it needs.
  const bool split_m = M >= N;
  const index_t len = split_m ? M : N, step = split_m ? u.mr : u.nr;
  const index_t tiles = (len + step - 1) / step;
  const int nt = static_cast<int>(std::min<index_t>(nthreads, tiles));
  if (split_m && alpha != T(0)) {  // (alpha == 0 never reads A or B: gemm_serial's early exit, per range)
    gemm_parallel_m<T>(nt, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const TeamShare tile_range = team_share(tiles);
    const index_t lo = std::min(len, tile_range.lo * step), hi = std::min(len, tile_range.hi * step);
    if (hi > lo) {
      if (split_m)
        gemm_serial<T>(hi - lo, N, K, alpha, A + lo * rsa, rsa, csa, B, rsb, csb, beta, C + lo * ldc, ldc);
      else
        gemm_serial<T>(M, hi - lo, K, alpha, A, rsa, csa, B + lo * csb, rsb, csb, beta, C + lo, ldc);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// pre-packed variant

template <typename T>
index_t gemm_kc() {
  return Blocks<T>::KC;
}

template <typename T>
void pack_a_full(const Ukr<T>& u, index_t M, index_t K, const T* A, index_t rsa, index_t csa, T* dst) {
  const index_t mpad = round_up(M, u.mr);
  for (index_t pc = 0; pc < K; pc += Blocks<T>::KC) {
    const index_t kc = std::min<index_t>(Blocks<T>::KC, K - pc);
    pack_a_mc_kc<T>(M, kc, A + pc * csa, rsa, csa, u.mr, dst + mpad * pc);
  }
}

template <typename T>
void pack_b_full(const Ukr<T>& u, index_t K, index_t N, const T* B, index_t rsb, index_t csb, T* dst) {
  const index_t npad = round_up(N, u.nr);
  for (index_t pc = 0; pc < K; pc += Blocks<T>::KC) {
    const index_t kc = std::min<index_t>(Blocks<T>::KC, K - pc);
    pack_b_kc_nc<T>(kc, N, B + pc * rsb, rsb, csb, u.nr, dst + npad * pc);
  }
}

template <typename T>
void gemm_prepacked_rows(const Ukr<T>& u, index_t M, index_t r0, index_t m, index_t N, index_t K, T alpha,
                         const T* apack, const T* bpack, T beta, T* C, index_t ldc) {
  const index_t mpad = round_up(M, u.mr), npad = round_up(N, u.nr);
  // loop 4 around micro-kernel: pc += KC (same K blocks as gemm_serial, so results are identical); rows r0..
  // are the slivers from r0 / mr on in each K block's packed A (slivers of kc x mr)
  for (index_t pc = 0; pc < K; pc += Blocks<T>::KC) {
    const index_t kc = std::min<index_t>(Blocks<T>::KC, K - pc);
    macro_kernel<T>(u, m, N, kc, alpha, apack + mpad * pc + r0 * kc, bpack + npad * pc, pc == 0 ? beta : T(1),
                    C + r0 * ldc, ldc);
  }
}

template <typename T>
void gemm_prepacked(const Ukr<T>& u, index_t M, index_t N, index_t K, T alpha, const T* apack, const T* bpack,
                    T beta, T* C, index_t ldc) {
  gemm_prepacked_rows<T>(u, M, 0, M, N, K, alpha, apack, bpack, beta, C, ldc);
}

#define FC_INSTANTIATE_GEMM(T, S)                                                                              \
  template void gemm_serial<T>(index_t, index_t, index_t, T, const T*, index_t, index_t, const T*, index_t, \
                               index_t, T, T*, index_t);                                                    \
  template void gemm<T>(index_t, index_t, index_t, T, const T*, index_t, index_t, const T*, index_t, index_t, \
                        T, T*, index_t, int);                                                       \
  template index_t gemm_kc<T>();                                                                            \
  template void pack_a_full<T>(const Ukr<T>&, index_t, index_t, const T*, index_t, index_t, T*);            \
  template void pack_b_full<T>(const Ukr<T>&, index_t, index_t, const T*, index_t, index_t, T*);            \
  template void gemm_prepacked<T>(const Ukr<T>&, index_t, index_t, index_t, T, const T*, const T*, T, T*,   \
                                  index_t);                                                                 \
  template void gemm_prepacked_rows<T>(const Ukr<T>&, index_t, index_t, index_t, index_t, index_t, T, const T*, \
                                       const T*, T, T*, index_t);
FC_FLOAT_TYPES(FC_INSTANTIATE_GEMM)
#undef FC_INSTANTIATE_GEMM

}  // namespace fastconv::cpu
