// config.h: every GEMM block size lives here (STYLE: MC KC NC MR NR only in this file).
// Loop nest (BLIS): jc by NC (B panel, L3) > pc by KC (packed B panel) > ic by MC (packed A block, L2)
// > jr by NR > ir by MR (micro-kernel, registers). MR x NR per ISA is fixed by the micro-kernel's register
// budget (AVX-512: 32 zmm; AVX2: 16 ymm); MC/KC/NC per element type.
// First choice, sized from the cache sizes of this machine kind (L1d 32-48 KiB, L2 1-2 MiB per core):
// a KC x NR sliver of B (f32: 256 x 32 x 4 B = 32 KiB) is reused across all MR slivers of A in the
// macro-kernel, an MC x KC block of A (f32: 96 x 256 x 4 B = 96 KiB) stays in L2.
#pragma once
#include <cstdint>

namespace fastconv::cpu::gemm_config {

// Register blocking per ISA (rows of C x columns of C per micro-kernel call).
constexpr int AVX512_MR_F32 = 8, AVX512_NR_F32 = 32;
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
constexpr int MAX_MR = 8, MAX_NR = 32;   // bound for the edge-tile scratch in the macro-kernel

template <typename T> struct Blocks;
template <> struct Blocks<float> {
  static constexpr std::int64_t MC = 96, KC = 256, NC = 2048;
};
template <> struct Blocks<double> {
  static constexpr std::int64_t MC = 96, KC = 128, NC = 2048;
};

// Below this many multiply-adds a GEMM runs on one thread: forking costs more than it saves.
constexpr std::int64_t PARALLEL_MIN_MACS = 1 << 18;

}  // namespace fastconv::cpu::gemm_config
