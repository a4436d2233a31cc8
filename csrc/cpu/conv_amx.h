// conv_amx.h: the bfloat16 convolution on Intel AMX tiles (TDPBF16PS: bfloat16 pairs, float32 accumulation).
// Forward, and the backward's weight and input gradients (the input gradient as the forward of dout with the
// filters flipped and transposed), for one group, stride 1, no dilation, filters up to 32 x 32, padding below
// the filter size; two or more channels and any filter count (padded with zeros to multiples of 16; one
// channel is left staged: conv_amx.cpp's geometry_ok says why). Every other convolution, and every call with
// a non-finite or subnormal input or with operands whose products could be subnormal (amx_exponents_ok),
// stays on the staged float path of conv_half.cpp, which these calls leave to it by returning false before
// writing anything. float16 runs its forward and its input gradient on the same tiles as exact bfloat16
// halves (split_f16 below) where the channels and filters are few (f16_tiles_gain below); its weight
// gradient stays staged.
//
// Layouts (conv_amx.cpp has the details):
//  - "wide" pixels: output pixel (oh, ow) is column oh*R + ow, R the padded input width, so tap (kh, kw) of
//    every pixel is one column offset kh*R + kw into the padded input plane and a B tile is 16 consecutive
//    columns; the columns with ow >= OW are computed and thrown away.
//  - forward B: per channel, the padded plane as 32-bit pairs (v[i], v[i+1]), so the pair of taps
//    (kw, kw + 1) of 16 pixels is one 64-byte row; a tile's 16 rows are 16 channels (the K order is
//    kh, kw pair, channel block, channel); an odd filter width pairs its last tap with a zero weight.
//  - weight gradient, per tap: A is the padded input planes (rows: channels; K: the wide pixels of the
//    images, shifted by the tap's offset); B is dout on the wide grid (zeros in the thrown-away columns) as
//    pairs of consecutive pixels, filters-last.
// Every output value is summed in an order fixed by the shape (images in order, slots of CONV_GRAD_SLOTS for
// the weight gradient), so the bits do not depend on the thread count.
// Numerics: products of bfloat16 are exact in float32; TDPBF16PS adds them in float32 with denormal inputs
// and outputs flushed to zero (values below 2**-126), the one difference from the staged path's float32
// kernels beyond the order of the additions. So subnormal inputs, and operands whose products or sums could
// fall below 2**-126, are left to the staged path (flushed, each would be an error as large as itself).
// Within one instruction the hardware adds with more precision than one float32 rounding per product
// (measured on Emerald Rapids: 1 + 2**-24 - 1 gives 2**-24, the emulation 0), so the emulated mode matches
// its results within the float32 bound, not bit for bit. Results are rounded once to bfloat16 (to nearest
// even).
#pragma once
#include <cstdint>
#include <string>

#include "common/half.h"
#include "common/shapes.h"

namespace fastconv::cpu {

using index_t = std::int64_t;

// How the tile program runs: off (never: the staged float path); amx (the CPU's tiles: AMX-BF16 and the OS's
// permission, arch_prctl); avx512_bf16 (the same tiles' products by AVX512_BF16 dot products, vdpbf16ps: AMD
// Zen 4, Intel Cooper Lake and later); emulated (scalar C++ with the tiles' semantics: tests of the packing,
// blocking and edges on any CPU). amx and avx512_bf16 run while the ISA in use is avx512.
enum class AmxMode : int { off = 0, amx = 1, emulated = 2, avx512_bf16 = 3 };
AmxMode amx_mode();
const char* amx_mode_name();
// "off" | "amx" | "avx512_bf16" (std::invalid_argument where the CPU, OS or build lacks it) | "emulated"
void set_amx_mode(const std::string& name);
// The mode at import: amx where available, else off (conv_amx.cpp: why avx512_bf16 is not a default);
// FASTCONV_AMX=off / emulated / avx512_bf16 names another (one this CPU lacks gives the default).
bool amx_available();
bool avx512_bf16_available();
// How many convolution (bfloat16 and float16, forward or backward) and GEMM calls the tiles have run since
// import: tests check the dispatch.
long long amx_calls();

// True where the mode and g's geometry let the tile program take a convolution (the values are checked by the
// calls below).
bool conv_amx_takes(const ConvGeom& g);

// Whether a float16 forward of Ci input channels and FO filters goes to the tiles: with four tile steps for each
// bfloat16 one and twice the packing it gains only on few channels and filters. DeepConvNet's layers at batch
// 100, float16 forward on the tiles against the staged float path (one-off, alternating in one process, Intel
// Xeon): 16 -> 16 channels on 28x28 1.30 vs 1.67 ms, 16 -> 32 on 14x14 0.59 vs 0.76, 32 -> 32 on 14x14 0.99
// vs 1.34, but 32 -> 64 on 8x8 1.33 vs 0.85 and 64 -> 64 on 8x8 no faster.
inline bool f16_tiles_gain(index_t Ci, index_t FO) { return Ci <= 32 && FO <= 32; }

bool conv_forward_amx(const bf16* x, const bf16* w, const bf16* b, bf16* out, const ConvGeom& g, index_t FN,
                      int nthreads, bool relu);
bool conv_forward_amx(const f16* x, const f16* w, const f16* b, f16* out, const ConvGeom& g, index_t FN,
                      int nthreads, bool relu);

// dx may be null (the weight gradient alone); dw and db must not be.
bool conv_backward_amx(const bf16* x, const bf16* w, const bf16* dout, bf16* dx, bf16* dw, bf16* db,
                       const ConvGeom& g, index_t FN, int nthreads);
// float16's input gradient alone, the forward of dout with the filters flipped (its weight gradient stays
// staged: with four tile steps for each bfloat16 one it ran slower there than the float path); false (nothing
// written) where the tiles do not take it.
bool conv_backward_data_amx(const f16* w, const f16* dout, f16* dx, const ConvGeom& g, index_t FN, int nthreads);

// The tile program's one kernel: C (MT*16 x NT*16 floats, row stride ldc floats) = [C +] sum over s < steps
// of A_s B_s, tile (i, j) of C from A tile i (16 rows x 32 bfloat16 at a + aoff[s] + i*16*lda bytes, row
// stride lda bytes) and B tile j (16 rows of 16 bfloat16 pairs at b + boff[s] + j*64 bytes, row stride ldb
// bytes). AMX, AVX512_BF16 (conv_amx_tiles.cpp) and emulated (conv_amx.cpp) implementations; mt and nt are
// 1 or 2.
using amx_block_fn = void (*)(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda,
                              const char* b, const index_t* boff, index_t ldb, float* c, index_t ldc,
                              bool accumulate);
void amx_block_tiles(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b,
                     const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate);
void amx_block_dpbf16(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda, const char* b,
                      const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate);
bool amx_kernels_built();  // conv_amx_tiles.cpp was compiled with the AMX and AVX512_BF16 flags

// The loops around the kernel (conv_amx_pack.h, compiled once per variant; conv_amx.cpp says what each does).
struct AmxPack {
  int (*exponent_scan)(const bf16* p, index_t n);
  void (*pad_planes)(const bf16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R,
                     index_t plane, std::uint16_t* dst);
  void (*pair_planes)(const bf16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R,
                      index_t plane, std::uint16_t* tmp, std::uint32_t* dst);
  void (*dout_pairs)(const bf16* d, index_t FN, index_t FNp, index_t OH, index_t OW, index_t R, index_t Ppad,
                     std::uint16_t* tmp, std::uint32_t* dst, float* db);
  void (*store_rows)(const float* c, index_t ldc, index_t rows, index_t len, const float* bias, bool relu,
                     bf16* out, index_t ldo);
  // float16 (split_f16): the finiteness scan, the forward's B as hi and lo pair planes, the store
  bool (*f16_finite)(const f16* p, index_t n);
  void (*pair_planes_f16)(const f16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R,
                          index_t plane, std::uint16_t* tmp, std::uint32_t* dst_hi, std::uint32_t* dst_lo);
  void (*store_rows_f16)(const float* c, index_t ldc, index_t rows, index_t len, const float* bias, bool relu,
                         f16* out, index_t ldo);
};

// float16 on the same tiles: a float16 value v is hi + lo exactly, hi its float32 value truncated to bfloat16
// and lo the rest (v has 11 significant bits, hi keeps 8, so lo has at most 3 and is a bfloat16 too), and
// v w = hi_v hi_w + lo_v hi_w + hi_v lo_w + lo_v lo_w: four products, each exact in float32, summed in float32
// by the tiles (four tile steps for each bfloat16 one). Every float16 value, subnormals included, is a multiple
// of 2**-24, so the halves are, their products and sums are multiples of 2**-48, and the tiles flush nothing:
// finite inputs are all the float16 tiles need (no exponent bound as for bfloat16).
inline void split_f16(std::uint16_t h, std::uint16_t& hi, std::uint16_t& lo) {
  const float f = half_to_float(f16{h});
  const std::uint32_t top = float_bits(f) & 0xffff0000u;
  hi = static_cast<std::uint16_t>(top >> 16);
  lo = static_cast<std::uint16_t>(float_bits(f - bits_float(top)) >> 16);  // f - hi is exact
}
AmxPack amx_pack_avx512();  // conv_amx_tiles.cpp (AVX-512)
void amx_tiles_begin();  // loads the tile configuration on the calling thread (amx mode only)
void amx_tiles_end();    // releases the tiles
bool amx_request_permission();  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA); true when granted

// True when the tiles may multiply operands whose exponent_scan (conv_amx_pack.h) gave ea and eb: both
// finite and normal, and every nonzero product at least 2**-110, so that it and every partial sum of such
// products (multiples of 2**-124) stay above 2**-126, where the tiles flush nothing.
inline bool amx_exponents_ok(int ea, int eb) { return ea >= 0 && eb >= 0 && ea + eb - 254 >= -110; }

// C = alpha * A B + beta * C (gemm.h's strided operands) on the tile program, for bfloat16 and the compute
// policy's f64_as_bf16 (gemm/gemm_amx.cpp); false (nothing written) where the mode is off or the product is
// too small to gain. Non-finite values need no fallback here: the zero padding only ever meets zeros.
template <typename S>
bool gemm_amx(index_t M, index_t N, index_t K, float alpha, const S* A, index_t rsa, index_t csa, const S* B,
              index_t rsb, index_t csb, float beta, S* C, index_t ldc, int nthreads);

// The tile kernel of the mode in use, the packing and store loops for it, and whether its threads must load
// the tile configuration; the scope loads it on the calling thread and releases it at the end (AMX only).
struct AmxRunner {
  amx_block_fn fn;
  AmxPack pack;
  bool tiles;
};
bool amx_active();  // the mode is not off (and, but for emulated, the ISA in use is avx512)
AmxRunner amx_runner();
void amx_count_call();  // amx_calls() + 1
struct AmxTileScope {
  explicit AmxTileScope(bool tiles);
  ~AmxTileScope();
  AmxTileScope(const AmxTileScope&) = delete;
  AmxTileScope& operator=(const AmxTileScope&) = delete;
  bool tiles_;
};

}  // namespace fastconv::cpu
