// conv_depthwise_avx2.cpp: the depthwise kernels of conv_depthwise_kernels.h compiled with -mavx2 -mfma (8
// floats / 4 doubles per instruction). Built only on x86-64 (per-file flags in CMakeLists.txt); called by
// conv_depthwise.cpp when the ISA in use is avx2.
#define FC_DW_NS dw_avx2
#include "cpu/conv_depthwise_kernels.h"
