// spatial_batchnorm_avx2.cpp: the spatial batch norm kernels (spatial_batchnorm_kernels.h) compiled with -mavx2
// (4 doubles per instruction, twice the baseline's SSE2 width; no -mfma and -ffp-contract=off, so the bits equal
// the baseline's). Built only on x86-64 (per-file flags in CMakeLists.txt); spatial_batchnorm.cpp calls it when
// the ISA in use is AVX2 or AVX-512.
#define FC_SBN_NS sbn_avx2
#include "cpu/spatial_batchnorm_kernels.h"

namespace fastconv::cpu::sbn_avx2 {

#define FC_SBN_VARIANT_INSTANTIATE(T, S)                                                                        \
  template void forward_train<T>(const T*, const T*, const T*, T*, T*, T*, double*, double*, std::int64_t,     \
                                 std::int64_t, std::int64_t, double, double);                                  \
  template void forward_infer<T>(const T*, const T*, const T*, const T*, const T*, T*, std::int64_t,           \
                                 std::int64_t, std::int64_t, double);                                          \
  template void backward<T>(const T*, const T*, const double*, const double*, const T*, T*, T*, T*,           \
                            std::int64_t, std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_SBN_VARIANT_INSTANTIATE)
FC_HALF_TYPES(FC_SBN_VARIANT_INSTANTIATE)
#undef FC_SBN_VARIANT_INSTANTIATE

}  // namespace fastconv::cpu::sbn_avx2
