// gemm_half.cpp: C = alpha * A B + beta * C for the storage types computed in float (is_staged: f16, bf16 of
// common/half.h, and the compute policy's float64 types of common/policy.h) on the float micro-kernel of the ISA
// in use. The packers read A and B in their storage type and write float slivers (the conversion happens in
// packing, never as a pass over whole operands), the micro-kernel accumulates in float32 over the whole of K,
// and the write-back computes alpha * acc + beta * C in float and rounds once (narrow).
// Loop nest: blocks of C (MC rows x HALF_NC columns, config.h) handed to threads in a fixed order; per block,
// B's column panel for all of K (KC-sliced as gemm_prepacked expects) and A's row block, then the macro-kernel
// per K slice into a float C tile. Every element is computed by the same sequence for any thread count.
#include <algorithm>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/half.h"
#include "cpu/conv_amx.h"
#include "cpu/gemm/config.h"
#include "cpu/gemm/gemm.h"
#include "cpu/half_convert.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {
using namespace gemm_config;

namespace {

// Packs n x kc values of a staged source (16-bit, or a policy's double) into float slivers of width w
// (zero-padded), element (x, k) at S[x*rs + k*cs]: sliver x / w at dst + (x / w)*kc*w + k*w + x % w.
// Contiguous runs are widened first into row (n or kc floats), then copied sliver by sliver (no division per
// element: w is not a compile-time constant, and a divide per value made packing the Affine layer's 1024 x 50
// weights 10x its GEMM, measured in float16).
template <typename S>
void pack_half(int w, index_t n, index_t kc, const S* src, index_t rs, index_t cs, float* dst, float* row) {
  const index_t npad = round_up(n, w);
  if (rs == 1) {
    // x contiguous: one widened line of n per k, copied into each sliver's row k
    for (index_t k = 0; k < kc; ++k) {
      widen(src + k * cs, row, n);
      for (index_t x0 = 0; x0 < npad; x0 += w) {
        float* d = dst + x0 * kc + k * w;
        const index_t m = std::min<index_t>(w, n - x0);
        std::copy(row + x0, row + x0 + m, d);
        std::fill(d + m, d + w, 0.0f);
      }
    }
  } else {
    // k contiguous (cs == 1: one widened line of kc per x), or neither
    for (index_t x = 0; x < npad; ++x) {
      float* d = dst + (x / w) * kc * w + x % w;
      if (x >= n) {
        for (index_t k = 0; k < kc; ++k) d[k * w] = 0.0f;
      } else if (cs == 1) {
        widen(src + x * rs, row, kc);
        for (index_t k = 0; k < kc; ++k) d[k * w] = row[k];
      } else {
        for (index_t k = 0; k < kc; ++k) d[k * w] = to_compute(src[x * rs + k * cs]);
      }
    }
  }
}

// The K slices of the float GEMM (equal blocks of at most KC, as gemm.cpp's k_block).
index_t half_k_block(index_t K) {
  constexpr index_t KC = Blocks<float>::KC;
  const index_t nb = (K + KC - 1) / KC;
  return std::min(KC, round_up((K + nb - 1) / nb, 8));
}

template <typename S>
void gemm_half(index_t M, index_t N, index_t K, float alpha, const S* A, index_t rsa, index_t csa, const S* B,
               index_t rsb, index_t csb, float beta, S* C, index_t ldc, int nthreads) {
  if (M <= 0 || N <= 0) return;
  // bfloat16 (and the policy's, bit for bit the same) on the tile program where its mode is on (conv_amx.h)
  if constexpr (std::is_same_v<S, bf16> || std::is_same_v<S, f64_as_bf16>)
    if (gemm_amx<S>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads)) return;
  const Ukr<float>& u = active_ukr<float>();
  constexpr index_t MC = Blocks<float>::MC, NC = HALF_NC;
  const index_t KC = half_k_block(std::max<index_t>(K, 1));
  const index_t nbi = (M + MC - 1) / MC, nbj = (N + NC - 1) / NC, nblocks = nbi * nbj;
  const bool k_empty = K <= 0 || alpha == 0.0f;
  const index_t mpad_max = round_up(std::min(MC, M), u.mr), npad_max = round_up(std::min(NC, N), u.nr);
  const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, nblocks)));
  const bool par = nt > 1 && M * N * std::max<index_t>(K, 1) >= PARALLEL_MIN_MACS;
#pragma omp parallel num_threads(nt) if (par)
  {
    Scratch<float> apack(k_empty ? 0 : static_cast<std::size_t>(mpad_max * K));
    Scratch<float> bpack(k_empty ? 0 : static_cast<std::size_t>(npad_max * K));
    Scratch<float> tile(static_cast<std::size_t>(mpad_max * npad_max));
    Scratch<float> row(static_cast<std::size_t>(std::max({K, NC, MC, index_t(1)})));
    index_t packed_j = -1;  // the column block whose B panel bpack holds
    // blocks in column-block-major order, contiguous per thread, so a thread repacks B only when jc changes
#pragma omp for schedule(static)
    for (index_t blk = 0; blk < nblocks; ++blk) {
      const index_t bj = blk / nbi, bi = blk % nbi;
      const index_t jc = bj * NC, ic = bi * MC;
      const index_t nc = std::min(NC, N - jc), mc = std::min(MC, M - ic);
      const index_t mpad = round_up(mc, u.mr), npad = round_up(nc, u.nr);
      float* t = tile.data();
      if (!k_empty) {
        if (packed_j != bj) {
          // B panel (K x nc): per K slice pc, npad * kc floats at npad * pc
          for (index_t pc = 0; pc < K; pc += KC) {
            const index_t kc = std::min(KC, K - pc);
            pack_half<S>(u.nr, nc, kc, B + pc * rsb + jc * csb, csb, rsb, bpack.data() + npad * pc, row.data());
          }
          packed_j = bj;
        }
        for (index_t pc = 0; pc < K; pc += KC) {
          const index_t kc = std::min(KC, K - pc);
          pack_half<S>(u.mr, mc, kc, A + ic * rsa + pc * csa, rsa, csa, apack.data() + mpad * pc, row.data());
        }
        // loop 4 around micro-kernel: pc += KC, accumulating into the float tile (mc x nc, ld nc)
        for (index_t pc = 0; pc < K; pc += KC) {
          const index_t kc = std::min(KC, K - pc);
          macro_kernel<float>(u, mc, nc, kc, 1.0f, apack.data() + mpad * pc, bpack.data() + npad * pc,
                              pc == 0 ? 0.0f : 1.0f, t, nc);
        }  // end loop 4
      }
      // write-back: one rounding per element of C
      float* r = row.data();
      for (index_t i = 0; i < mc; ++i) {
        S* c = C + (ic + i) * ldc + jc;
        const float* ti = t + i * nc;
        if (beta == 0.0f) {
          for (index_t j = 0; j < nc; ++j) r[j] = k_empty ? 0.0f : alpha * ti[j];
        } else {
          widen(c, r, nc);
          for (index_t j = 0; j < nc; ++j) r[j] = k_empty ? beta * r[j] : alpha * ti[j] + beta * r[j];
        }
        narrow(r, c, nc);
      }
    }
  }
}

}  // namespace

#define FC_GEMM_HALF_(S)                                                                                         \
  template <>                                                                                                    \
  void gemm<S>(index_t M, index_t N, index_t K, float alpha, const S* A, index_t rsa, index_t csa, const S* B, \
               index_t rsb, index_t csb, float beta, S* C, index_t ldc, int nthreads) {                         \
    gemm_half<S>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads);                             \
  }                                                                                                              \
  template <>                                                                                                    \
  void gemm_serial<S>(index_t M, index_t N, index_t K, float alpha, const S* A, index_t rsa, index_t csa,       \
                      const S* B, index_t rsb, index_t csb, float beta, S* C, index_t ldc) {                    \
    gemm_half<S>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, 1);                                    \
  }
FC_GEMM_HALF_(f16)
FC_GEMM_HALF_(bf16)
FC_GEMM_HALF_(f64_as_f32)
FC_GEMM_HALF_(f64_as_f16)
FC_GEMM_HALF_(f64_as_bf16)
#undef FC_GEMM_HALF_

}  // namespace fastconv::cpu
