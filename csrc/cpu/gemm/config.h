// config.h: every GEMM block size lives here (STYLE: MC KC NC MR NR only in this file).
// Loop nest (BLIS): jc by NC (B panel) > pc by KC (packed B panel) > ic by MC (packed A block, L2)
// > jr by NR > ir by MR (micro-kernel, registers). MR x NR per ISA is fixed by the micro-kernel's register
// budget (AVX-512: 32 zmm; AVX2: 16 ymm); MC/KC/NC per element type.
// Measured on this project's machine (Zen 4 class: one 512-bit FMA per cycle, ~114 GFLOP/s f32 per core,
// L1d 32 KiB, L2 1 MiB per core), single thread:
//  - AVX-512 f32 16 x 16 rather than 8 x 32: both ~110 GFLOP/s in the micro-kernel alone, but SGEMM 1024^3
//    reaches 87% of peak with 16 x 16 (8 x 32: 81%), and 16-wide slivers waste less on the small output
//    grids of MNIST layers (8x8 images: 80 of 80 columns used instead of 96).
//  - KC = 768 (f32) rather than 256: one FMA per cycle needs only 8 B/cycle of B, which L2 sustains, so a
//    B sliver larger than L1 costs nothing while the K dimension of every DeepConvNet layer (<= 576) fits
//    one block (no re-read of C): SGEMM 1024^3 83 -> 93 GFLOP/s.
#pragma once
#include <cstdint>

namespace fastconv::cpu::gemm_config {

// Register blocking per ISA (rows of C x columns of C per micro-kernel call).
constexpr int AVX512_MR_F32 = 16, AVX512_NR_F32 = 16;
constexpr int AVX512_MR_F64 = 8, AVX512_NR_F64 = 16;
constexpr int AVX2_MR_F32 = 6, AVX2_NR_F32 = 16;
constexpr int AVX2_MR_F64 = 6, AVX2_NR_F64 = 8;
constexpr int REF_MR = 4, REF_NR = 8;
// Dot-product tiles of the stride-1 weight gradient (filters x taps of vector accumulators): AVX-512 4 x 6
// (24 zmm + 4 for the dout rows), AVX2 2 x 4 (8 ymm + 2), portable 2 x 2. The AVX-512 choice was measured on
// the book's layers against GEMM on packed operands: 1.2-1.5x faster on every DeepConvNet layer.
constexpr int AVX512_DOT_MF = 4, AVX512_DOT_MT = 6;
constexpr int AVX2_DOT_MF = 2, AVX2_DOT_MT = 4;
constexpr int REF_DOT_MF = 2, REF_DOT_MT = 2;
constexpr int MAX_DOT_TILE = 64;  // bound for the tile scratch in conv.cpp
static_assert(AVX512_DOT_MF * AVX512_DOT_MT <= MAX_DOT_TILE && AVX2_DOT_MF * AVX2_DOT_MT <= MAX_DOT_TILE &&
              REF_DOT_MF * REF_DOT_MT <= MAX_DOT_TILE);
constexpr int MAX_MR = 16, MAX_NR = 32;   // bound for the edge-tile scratch in the macro-kernel

template <typename T> struct Blocks;
template <> struct Blocks<float> {
  static constexpr std::int64_t MC = 96, KC = 768, NC = 2048;
};
template <> struct Blocks<double> {
  static constexpr std::int64_t MC = 96, KC = 384, NC = 2048;
};

// Below this many multiply-adds a GEMM runs on one thread: forking costs more than it saves.
constexpr std::int64_t PARALLEL_MIN_MACS = 1 << 18;

}  // namespace fastconv::cpu::gemm_config
