// conv_amx_tiles.cpp: the native AMX tile kernel of conv_amx.h (compiled with -mamx-tile -mamx-bf16; called
// only where amx_mode() is native). Eight tile registers: C tiles 0-3 (tile (i, j) is register 2*i + j), A
// tiles 4-5, B tiles 6-7, each 16 rows of 64 bytes. Without the compiler's AMX support the calls throw
// (amx_native_available() is then false, so they are never made).
#include <cstdint>
#include <stdexcept>

#include "cpu/conv_amx.h"

#define FC_AMX_NS amx_avx512
#include "cpu/conv_amx_pack.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
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

}  // namespace

void amx_block_native(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b,
                      const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate) {
  if (mt > 1)
    (nt > 1 ? block<2, 2> : block<2, 1>)(steps, a, aoff, lda, b, boff, ldb, c, ldc, accumulate);
  else
    (nt > 1 ? block<1, 2> : block<1, 1>)(steps, a, aoff, lda, b, boff, ldb, c, ldc, accumulate);
}

AmxPack amx_pack_native() { return amx_avx512::pack_fns(); }

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

void amx_block_native(int, int, index_t, const char*, const index_t*, index_t, const char*, const index_t*, index_t,
                      float*, index_t, bool) {
  throw std::logic_error("fastconv: built without AMX support");
}
AmxPack amx_pack_native() { return amx_avx512::pack_fns(); }
void amx_tiles_begin() {}
void amx_tiles_end() {}
bool amx_request_permission() { return false; }

#endif

}  // namespace fastconv::cpu
