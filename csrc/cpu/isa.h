// isa.h: the instruction set the CPU kernels use, chosen once at import from CPUID (the best of avx512, avx2,
// scalar this build and CPU have), lowered by FASTCONV_ISA, or forced at run time by set_isa (tests). The GEMM
// picks its micro-kernels from it, the optimizer updates their variant; fastconv.info() reports it.
#pragma once
#include <string>
#include <vector>

namespace fastconv::cpu {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

Isa active_isa();
const char* active_isa_name();                // "avx512" | "avx2" | "scalar"
void set_isa(const std::string& name);        // throws std::invalid_argument if unknown or unavailable
std::vector<const char*> compiled_isas();     // built into this module
std::vector<const char*> supported_isas();    // built and supported by this CPU
// Reduced-precision arithmetic this CPU reports (CPUID leaf 7): "f16c", "avx512_bf16", "avx512_fp16",
// "amx_bf16", "amx_fp16"; reported by fastconv.info(), not yet used by any kernel (16-bit types are converted
// to float32, csrc/common/half.h). AMX also needs the OS's permission (arch_prctl), not checked here.
std::vector<const char*> cpu_features();

// The AVX-512 float32 GEMM micro-kernel (gemm/config.h has the measurements that chose each): "16x16" where
// a core issues one 512-bit FMA a cycle (AMD Zen 4, two 256-bit pipes), "12x32" where it issues two (Intel's
// Xeon Gold 6xxx / Platinum since Skylake-SP; measured on Emerald Rapids), whose 16x16 kernel is bound by its
// 17 loads per 16 FMAs. Intel parts with one 512-bit FMA unit (some Xeon Silver / Bronze, client chips) also
// get 12x32: not measured there. Chosen at import from the
// CPU vendor, lowered to neither by FASTCONV_ISA, forced by FASTCONV_GEMM_TILE or set_avx512_tile (tests run
// both on every AVX-512 machine, emulated ones included). float64 has one AVX-512 kernel (8 x 16).
enum class Avx512Tile : int { t16x16 = 0, t12x32 = 1 };
Avx512Tile avx512_tile();
const char* avx512_tile_name();                // "16x16" | "12x32"
void set_avx512_tile(const std::string& name);  // throws std::invalid_argument if unknown
std::vector<const char*> avx512_tiles();        // every name set_avx512_tile takes

// AVX-512 CPUs have AVX2 too: the kernels with an AVX2 variant use it under either.
inline bool has_avx2(Isa isa) { return isa != Isa::scalar; }

}  // namespace fastconv::cpu
