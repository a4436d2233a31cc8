// optim.cpp: fused in-place optimizer updates (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, Adadelta).
// Each update is one pass over memory: it reads p, g and the state once and writes p and the state once, where
// the NumPy reference makes 3-8 passes and as many temporaries. Element-wise, so the static split over OpenMP
// threads cannot change a bit. The kernels live in optim_kernels.h; this file compiles them for baseline
// x86-64 (or any CPU) as optim_base, optim_avx2.cpp compiles them with AVX2, and the entry points in optim.h pick
// one per call from the ISA in use (same bits either way); this file says which (optim_use_avx2).
// Variants: optim_base, optim_avx2; each optimizer with and without weight decay (no branch in the loop).
#define FC_OPTIM_NS optim_base
#include "cpu/optim_kernels.h"

#include "cpu/isa.h"

namespace fastconv::cpu {

// The AVX2 variant when the ISA in use (GEMM's: CPUID, FASTCONV_ISA or set_cpu_isa) is avx2 or avx512, which
// both imply AVX2; tests force each ISA to cover both variants.
bool optim_use_avx2() {
#if FASTCONV_HAVE_X86_UKR
  return has_avx2(active_isa());
#else
  return false;
#endif
}

const char* optim_variant() { return optim_use_avx2() ? "avx2" : "baseline"; }

}  // namespace fastconv::cpu
