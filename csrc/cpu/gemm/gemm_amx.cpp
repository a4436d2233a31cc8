// gemm_amx.cpp: C = alpha * A B + beta * C for bfloat16 and the compute policy's f64_as_bf16 on the tile
// program of conv_amx.h (AMX tiles, or its AVX512_BF16 and emulated modes). gemm_half.cpp calls it first.
// Per block of C (kMB rows x up to kNB columns): A's rows packed row-major over all of K (zero past K, up to
// a multiple of 32), B's columns as pairs of consecutive k (the tiles' VNNI layout), then the kernel over all
// of K per 32 x 32 piece of C, and alpha * sum + beta * C rounded once. Every element is one kernel call over
// the whole of K, whatever the thread count, so the bits do not depend on it. The blocks go to the threads in
// column-block-major order, contiguous per thread, so a thread repacks B only when its column block changes.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/half.h"
#include "common/policy.h"
#include "cpu/conv_amx.h"
#include "cpu/gemm/gemm.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

constexpr index_t kMB = 32, kNB = 256;
// Below this many multiply-adds the float path's smaller set-up wins (and the tiles' padding of K to 32 and
// of M and N to 16 costs most on the smallest products).
constexpr index_t kMinMacs = 1 << 15;

template <typename S>
inline std::uint16_t bf16_bits(S v) {
  return float_to_bf16(to_compute(v)).bits;  // exact: both types hold bfloat16 values
}

// rows [0, mc) of A (A[i*rsa + k*csa]) as kMB rows of Kp values (zeros past mc and K)
template <typename S>
void pack_a(index_t mc, index_t K, index_t Kp, const S* A, index_t rsa, index_t csa, std::uint16_t* dst) {
  for (index_t i = 0; i < kMB; ++i) {
    std::uint16_t* d = dst + i * Kp;
    index_t k = 0;
    if (i < mc)
      for (const S* a = A + i * rsa; k < K; ++k) d[k] = bf16_bits(a[k * csa]);
    std::memset(d + k, 0, static_cast<std::size_t>(Kp - k) * 2);
  }
}

// columns [0, nc) of B (B[k*rsb + j*csb]) as Kp / 2 rows of ncp pairs (B[2r][j], B[2r+1][j]), zeros past K
// and nc
template <typename S>
void pack_b(index_t K, index_t Kp, index_t nc, index_t ncp, const S* B, index_t rsb, index_t csb,
            std::uint32_t* dst) {
  for (index_t r = 0; r < Kp / 2; ++r) {
    std::uint32_t* d = dst + r * ncp;
    const index_t k0 = 2 * r, k1 = 2 * r + 1;
    for (index_t j = 0; j < ncp; ++j) {
      const std::uint32_t lo = j < nc && k0 < K ? bf16_bits(B[k0 * rsb + j * csb]) : 0u;
      const std::uint32_t hi = j < nc && k1 < K ? bf16_bits(B[k1 * rsb + j * csb]) : 0u;
      d[j] = lo | (hi << 16);
    }
  }
}

// conv_amx_pack.h's exponent_scan over a strided rows x cols operand (X[i*rs + j*cs]), except that inf and
// NaN are not refused (here the zero padding only meets zeros, so they go through as in the reference): -1
// for a subnormal value, else the smallest biased exponent among the nonzero values (inf and NaN count 255).
template <typename S>
int exponent_scan_strided(index_t rows, index_t cols, const S* X, index_t rs, index_t cs) {
  std::uint16_t bad = 0, emin = 0xff;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const std::uint16_t v = bf16_bits(X[i * rs + j * cs]) & 0x7fffu, e = v >> 7;
      bad |= static_cast<std::uint16_t>((e == 0) & (v != 0));
      emin = std::min<std::uint16_t>(emin, v == 0 ? 0xff : e);
    }
  return bad ? -1 : emin;
}

}  // namespace

template <typename S>
bool gemm_amx(index_t M, index_t N, index_t K, float alpha, const S* A, index_t rsa, index_t csa, const S* B,
              index_t rsb, index_t csb, float beta, S* C, index_t ldc, int nthreads) {
  if (!amx_active() || M <= 0 || N <= 0 || K <= 0 || alpha == 0.0f) return false;
  if (static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) < kMinMacs) return false;
  // products the tiles would flush (conv_amx.h: amx_exponents_ok) stay staged
  if (!amx_exponents_ok(exponent_scan_strided(M, K, A, rsa, csa), exponent_scan_strided(K, N, B, rsb, csb)))
    return false;
  const AmxRunner run = amx_runner();
  const index_t Kp = round_up(K, 32), steps = Kp / 32;
  const index_t nbi = (M + kMB - 1) / kMB, nbj = (N + kNB - 1) / kNB, nblocks = nbi * nbj;
  const index_t ncp_max = round_up(std::min(N, kNB), 32);
  std::vector<index_t> aoff(static_cast<std::size_t>(steps));
  for (index_t s = 0; s < steps; ++s) aoff[s] = s * 64;  // (B's offsets depend on the panel width: per block)
  const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, nblocks)));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    AmxTileScope scope(run.tiles);
    // the thread's GEMM arenas (workspace.h): no allocation per call once they have grown
    std::uint16_t* apack = thread_workspace<std::uint16_t>(WS_GEMM_A, static_cast<std::size_t>(kMB * Kp));
    std::uint32_t* bpack = thread_workspace<std::uint32_t>(WS_GEMM_B, static_cast<std::size_t>(Kp / 2 * ncp_max));
    alignas(64) float tile[kMB * 32];
    std::vector<index_t> bo(static_cast<std::size_t>(steps));
    index_t packed_j = -1;
#pragma omp for schedule(static)
    for (index_t blk = 0; blk < nblocks; ++blk) {
      const index_t bj = blk / nbi, bi = blk % nbi;
      const index_t jc = bj * kNB, ic = bi * kMB;
      const index_t nc = std::min(kNB, N - jc), mc = std::min(kMB, M - ic), ncp = round_up(nc, 32);
      if (packed_j != bj) {
        pack_b(K, Kp, nc, ncp, B + jc * csb, rsb, csb, bpack);
        for (index_t s = 0; s < steps; ++s) bo[s] = s * 16 * ncp * 4;
        packed_j = bj;
      }
      pack_a(mc, K, Kp, A + ic * rsa, rsa, csa, apack);
      const int mt = mc > 16 ? 2 : 1;
      for (index_t j0 = 0; j0 < nc; j0 += 32) {
        const index_t w = std::min<index_t>(32, nc - j0);
        run.fn(mt, w > 16 ? 2 : 1, steps, reinterpret_cast<const char*>(apack), aoff.data(), Kp * 2,
               reinterpret_cast<const char*>(bpack + j0), bo.data(), ncp * 4, tile, 32, false);
        for (index_t i = 0; i < mc; ++i) {
          S* c = C + (ic + i) * ldc + jc + j0;
          const float* t = tile + i * 32;
          for (index_t j = 0; j < w; ++j)
            c[j] = from_compute<S>(beta == 0.0f ? alpha * t[j] : alpha * t[j] + beta * to_compute(c[j]));
        }
      }
    }
  }
  amx_count_call();
  return true;
}

template bool gemm_amx<bf16>(index_t, index_t, index_t, float, const bf16*, index_t, index_t, const bf16*, index_t,
                             index_t, float, bf16*, index_t, int);
template bool gemm_amx<f64_as_bf16>(index_t, index_t, index_t, float, const f64_as_bf16*, index_t, index_t,
                                    const f64_as_bf16*, index_t, index_t, float, f64_as_bf16*, index_t, int);

}  // namespace fastconv::cpu
