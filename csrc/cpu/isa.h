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

// AVX-512 CPUs have AVX2 too: the kernels with an AVX2 variant use it under either.
inline bool has_avx2(Isa isa) { return isa != Isa::scalar; }

}  // namespace fastconv::cpu
