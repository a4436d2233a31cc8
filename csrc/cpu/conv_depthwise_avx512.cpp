// conv_depthwise_avx512.cpp: the depthwise kernels of conv_depthwise_kernels.h compiled with AVX-512 (16 floats
// / 8 doubles per instruction; with FASTCONV_EMULATE_AVX512 for AVX2, as the GEMM's micro-kernels). Built only on
// x86-64 (per-file flags in CMakeLists.txt); called by conv_depthwise.cpp when the ISA in use is avx512.
#define FC_DW_NS dw_avx512
#include "cpu/conv_depthwise_kernels.h"
