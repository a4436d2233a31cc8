// optim_avx2.cpp: the optimizer update kernels of optim_kernels.h compiled with -mavx2 (8 floats / 4 doubles per
// instruction, twice the baseline's SSE2 width; no -mfma, so the bits equal the baseline's and the reference's).
// Built only on x86-64 (per-file flags in CMakeLists.txt) and called by optim.cpp when the ISA in use is AVX2
// or AVX-512 (measured here: Adadelta on 36,864 floats in L2, 47 us baseline vs 22 us with AVX2).
#define FC_OPTIM_NS optim_avx2
#include "cpu/optim_kernels.h"
