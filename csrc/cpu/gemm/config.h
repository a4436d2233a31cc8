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
// Re-measured on Zen 3 (AMD EPYC, AVX2+FMA, 2 x 256-bit FMA pipes, L1d 32 KiB, L2 512 KiB per core; FMA
// peak 98-99 GFLOP/s f32 per core by a 12-chain vfmadd loop), single thread, thread CPU time, alternating
// binaries (the machine was shared, so only side-by-side ratios count):
//  - AVX2 f32 6 x 16 micro-kernel alone on L1-resident panels: 92-96 GFLOP/s (93-97% of peak); k unrolled
//    by 4 or 8: no better (88-94); 4 x 24 / 5 x 16: the same within noise, in SGEMM 1024^3 too (77-79 both).
//  - SGEMM 1024^3 with MC/KC = 96/768, 96/256, 144/256, 120/384, 192/384, 144/512: all 65-70 GFLOP/s in the
//    same rounds (differences below the noise), so the AVX-512 machine's choice is kept for both ISAs.
//    Prefetching the C tile in the micro-kernel (ukr_simd.h) was the measurable win: 67 -> 71-78 GFLOP/s.
// Re-measured on Intel Xeon (Emerald Rapids: two 512-bit FMA pipes, 184 GFLOP/s f32 per core by peak.cpp,
// L1d 48 KiB, L2 2 MiB per core), one core, macro-kernel alone (mc 96, nc 2048; /tmp harness over
// ukr_simd.h), GFLOP/s at kc 768 / 384 / 256:
//  - 16 x 16: 124 / 137 / 144. Each k step issues 16 FMAs (8 cycles on two pipes) and 17 loads (one B
//    vector, 16 broadcasts of A): the two load ports, not the FMAs, set the pace.
//  - 12 x 32: 160 / 166 / 172; 14 x 32: 162 / 167 / 171; 8 x 48: 167 / 165 / 171; 6 x 64: 166 / 163 / 167
//    (24-28 accumulators, 14 loads per 24 FMAs). 12 x 32 is kept: MC = 96 and MC_PAR = 48 are multiples of
//    12, and NR = 32 fits MAX_NR. SGEMM 1024^3 (bench_gemm.py, alternating runs, 1 thread): 16 x 16 72% of
//    peak, NumPy (OpenBLAS) 88-90%; 12 x 32 81-85% with KC 768 or 384 alike (within noise), so KC stays.
//  - float64 8 x 16 (current) 78-81, 12 x 16 82-84 of 92: within 5%, one f64 kernel is kept.
//  - Gather tiles (the convolution, ukr_simd.h rows_tile), one core, one image's forward tiles
//    (C in, FN filters, H x H pixels, 3 x 3), useful GFLOP/s for 12 x 16 / 8 x 32 / 12 x 32 / 14 x 16:
//    C16 H28 FN16 84 / 62 / 61 / 93 (half of a 32-wide sliver is padding); C16 H28 FN32 142 / 175 / 158 / 93;
//    C32 H14 FN64 126 / 165 / 153 / 130; C64 H8 FN64 121 / 176 / 144 / 121; C64 H7 FN64 92 / 140 / 132 /
//    110. 12 x 16 has the same load-port bound as the 16 x 16 GEMM tile (13 loads per 12 FMAs): 8 x 32 is
//    added as a second tile for 32+ filters, 12 x 16 kept for 16 (and 48).
#pragma once
#include <cstdint>

namespace fastconv::cpu::gemm_config {

// Register blocking per ISA (rows of C x columns of C per micro-kernel call).
constexpr int AVX512_MR_F32 = 16, AVX512_NR_F32 = 16;      // one 512-bit FMA a cycle (AMD Zen 4)
constexpr int AVX512W_MR_F32 = 12, AVX512W_NR_F32 = 32;    // two 512-bit FMA pipes (Intel Xeon); isa.h
constexpr int AVX512_MR_F64 = 8, AVX512_NR_F64 = 16;
constexpr int AVX2_MR_F32 = 6, AVX2_NR_F32 = 16;
constexpr int AVX2_MR_F64 = 6, AVX2_NR_F64 = 8;
constexpr int REF_MR = 4, REF_NR = 8;
// Gather tiles of the convolution (pixels or taps x filters, A read in place), see ukr_simd.h and
// conv.cpp. AVX2: the GEMM's 6 x 16 / 6 x 8 blocking (12 accumulators, 6 row pointers); AVX-512: 12 x 16 /
// 12 x 8 (12 accumulators; 16 rows would need 16 row pointers, more than the free integer registers).
constexpr int AVX512_ROWS_MR_F32 = 12, AVX512_ROWS_NR_F32 = 16;
// the 12 x 32 CPUs' second gather tile, for 32, 64, 96, ... filters (gemm.h: gather_ukr): 8 pixels x 2
// vectors, 16 accumulators, 8 broadcasts + 2 loads per 16 FMAs
constexpr int AVX512W_ROWS_MR_F32 = 8, AVX512W_ROWS_NR_F32 = 32;
constexpr int AVX512_ROWS_MR_F64 = 12, AVX512_ROWS_NR_F64 = 8;
constexpr int AVX2_ROWS_MR_F32 = 6, AVX2_ROWS_NR_F32 = 16;
constexpr int AVX2_ROWS_MR_F64 = 6, AVX2_ROWS_NR_F64 = 8;
constexpr int REF_ROWS_MR = 4, REF_ROWS_NR = 8;
constexpr int MAX_MR = 16, MAX_NR = 32;   // bound for the edge-tile scratch in the macro-kernel

template <typename T> struct Blocks;
template <> struct Blocks<float> {
  static constexpr std::int64_t MC = 96, KC = 768, NC = 2048;
};
template <> struct Blocks<double> {
  static constexpr std::int64_t MC = 96, KC = 384, NC = 2048;
};

// Column block of the f16 / bf16 GEMM (gemm_half.cpp), which packs B for all of K per block so that C is
// rounded once: 256 columns keep a K = 4608 float panel at 4.5 MiB and the float C tile (MC x 256) in L2.
constexpr std::int64_t HALF_NC = 256;

// Row block of the multi-threaded GEMM (gemm.cpp, gemm_parallel_m), handed out dynamically: small enough that
// the blocks even out between threads (SGEMM 1024^3: 22 blocks), large enough to reuse each B sliver over
// 8 micro-kernel calls.
constexpr std::int64_t MC_PAR = 48;

// Below this many multiply-adds a GEMM runs on one thread: forking costs more than it saves.
constexpr std::int64_t PARALLEL_MIN_MACS = 1 << 18;

}  // namespace fastconv::cpu::gemm_config
