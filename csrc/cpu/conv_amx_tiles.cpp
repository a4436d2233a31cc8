// conv_amx_tiles.cpp: the tile kernel of conv_amx.h on AMX (amx mode) and on AVX512_BF16 dot products
// (avx512_bf16 mode), and the AVX-512 copy of conv_amx_pack.h's loops for both (compiled with -mamx-tile
// -mamx-bf16 -mavx512bf16 and AVX-512; called only in those modes, which need the CPU's support). AMX: eight
// tile registers, C tiles 0-3 (tile (i, j) is register 2*i + j), A tiles 4-5, B tiles 6-7, each 16 rows of 64
// bytes. Without the compiler's support the kernels throw (amx_kernels_built() is then false, so neither mode
// can be chosen and they are never called).
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "cpu/conv_amx.h"

#define FC_AMX_NS amx_avx512
#include "cpu/conv_amx_pack.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FC_AMX_BUILT 1
#else
#define FC_AMX_BUILT 0
#endif

namespace fastconv::cpu {

#if FC_AMX_BUILT

namespace {

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

template <int MT, int NT>
void block(index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b, const index_t* boff,
           index_t ldb, float* c, index_t ldc, bool accumulate) {
  const index_t ldcb = ldc * 4;
  float* c01 = c + 16;
  float* c10 = c + 16 * ldc;
  float* c11 = c10 + 16;
  if (accumulate) {
    _tile_loadd(0, c, ldcb);
    if (NT > 1) _tile_loadd(1, c01, ldcb);
    if (MT > 1) _tile_loadd(2, c10, ldcb);
    if (MT > 1 && NT > 1) _tile_loadd(3, c11, ldcb);
  } else {
    _tile_zero(0);
    if (NT > 1) _tile_zero(1);
    if (MT > 1) _tile_zero(2);
    if (MT > 1 && NT > 1) _tile_zero(3);
  }
  const char* a1 = a + 16 * lda;
  for (index_t s = 0; s < steps; ++s) {
    const char* bs = b + boff[s];
    _tile_loadd(4, a + aoff[s], lda);
    _tile_loadd(6, bs, ldb);
    _tile_dpbf16ps(0, 4, 6);
    if (NT > 1) {
      _tile_loadd(7, bs + 64, ldb);
      _tile_dpbf16ps(1, 4, 7);
    }
    if (MT > 1) {
      _tile_loadd(5, a1 + aoff[s], lda);
      _tile_dpbf16ps(2, 5, 6);
      if (NT > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, ldcb);
  if (NT > 1) _tile_stored(1, c01, ldcb);
  if (MT > 1) _tile_stored(2, c10, ldcb);
  if (MT > 1 && NT > 1) _tile_stored(3, c11, ldcb);
}

// The same products on AVX512_BF16: vdpbf16ps adds a.bf16[2l]*b.bf16[2l] + a.bf16[2l+1]*b.bf16[2l+1] into
// float lane l, so a B tile row (16 pairs of one k pair) is one vector and A's pair for one C row a
// broadcast. Eight C rows x NT vectors a pass: 16 accumulators, 2 B loads and 8 broadcasts per 16 dot
// products.
template <int NT>
void dp_rows8(index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b, const index_t* boff,
              index_t ldb, float* c, index_t ldc, bool accumulate) {
  // every loop over r and j unrolled, so that the 8 x NT accumulators live in registers (rolled, GCC kept
  // them on the stack: 2.5x slower)
  __m512 acc[8][NT];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) acc[r][j] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16 * j) : _mm512_setzero_ps();
  for (index_t s = 0; s < steps; ++s) {
    const char* as = a + aoff[s];
    const char* bs = b + boff[s];
    for (int q = 0; q < 16; ++q) {
      __m512bh bv[NT];
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(bs + q * ldb + 64 * j);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        std::int32_t pair;
        std::memcpy(&pair, as + r * lda + 4 * q, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 2
        for (int j = 0; j < NT; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) _mm512_storeu_ps(c + r * ldc + 16 * j, acc[r][j]);
}

}  // namespace

void amx_block_tiles(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b,
                     const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate) {
  if (mt > 1)
    (nt > 1 ? block<2, 2> : block<2, 1>)(steps, a, aoff, lda, b, boff, ldb, c, ldc, accumulate);
  else
    (nt > 1 ? block<1, 2> : block<1, 1>)(steps, a, aoff, lda, b, boff, ldb, c, ldc, accumulate);
}

void amx_block_dpbf16(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b,
                      const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate) {
  for (index_t r0 = 0; r0 < mt * 16; r0 += 8)
    (nt > 1 ? dp_rows8<2> : dp_rows8<1>)(steps, a + r0 * lda, aoff, lda, b, boff, ldb, c + r0 * ldc, ldc, accumulate);
}

bool amx_kernels_built() { return true; }

AmxPack amx_pack_avx512() { return amx_avx512::pack_fns(); }

void amx_tiles_begin() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  // GCC's _tile_loadconfig names only 8 bytes of its operand as read, so without this barrier the stores of
  // the rows and widths above were dropped as dead (ldtilecfg then faulted on an empty configuration)
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

void amx_tiles_end() { _tile_release(); }

bool amx_request_permission() {
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

#else

void amx_block_tiles(int, int, index_t, const char*, const index_t*, index_t, const char*, const index_t*, index_t,
                     float*, index_t, bool) {
  throw std::logic_error("fastconv: built without AMX support");
}
void amx_block_dpbf16(int, int, index_t, const char*, const index_t*, index_t, const char*, const index_t*, index_t,
                      float*, index_t, bool) {
  throw std::logic_error("fastconv: built without AVX512_BF16 support");
}
bool amx_kernels_built() { return false; }
AmxPack amx_pack_avx512() { return amx_avx512::pack_fns(); }
void amx_tiles_begin() {}
void amx_tiles_end() {}
bool amx_request_permission() { return false; }

#endif

}  // namespace fastconv::cpu
