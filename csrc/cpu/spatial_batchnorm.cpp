// spatial_batchnorm.cpp: per-channel batch normalisation of x (N, C, HW), training forward, inference forward and
// backward. The kernels live in spatial_batchnorm_kernels.h (which says how they sum and round); this file
// compiles them for baseline x86-64 (or any CPU) as sbn_base, spatial_batchnorm_avx2.cpp compiles them with
// AVX2, and the entry points below pick one per call from the ISA in use (the same bits either way). Measured
// on one core of the 2-vCPU Xeon (AVX-512, AMX), a one-off A/B alternating the two in one process through
// set_cpu_isa, on a host busy with training runs: float32 100 x 16 x 28 x 28, training forward 1.33 -> 1.11 ms,
// backward 1.79 -> 1.41 ms; 100 x 64 x 7 x 7, 0.37 -> 0.33 and 0.50 -> 0.48 ms.
#define FC_SBN_NS sbn_base
#include "cpu/spatial_batchnorm_kernels.h"

#include "cpu/isa.h"
#include "cpu/spatial_batchnorm.h"

namespace fastconv::cpu {

#if FASTCONV_HAVE_X86_UKR
namespace sbn_avx2 {  // spatial_batchnorm_avx2.cpp
template <typename T>
void forward_train(const T*, const T*, const T*, T*, T*, T*, double*, double*, std::int64_t, std::int64_t,
                   std::int64_t, double, double);
template <typename T>
void forward_infer(const T*, const T*, const T*, const T*, const T*, T*, std::int64_t, std::int64_t, std::int64_t,
                   double);
template <typename T>
void backward(const T*, const T*, const double*, const double*, const T*, T*, T*, T*, std::int64_t, std::int64_t,
              std::int64_t);
}  // namespace sbn_avx2
#endif

namespace {
// The AVX2 variant when the ISA in use (GEMM's: CPUID, FASTCONV_ISA or set_cpu_isa) is avx2 or avx512, which
// both imply AVX2; tests force each ISA to cover both variants.
inline bool sbn_use_avx2() {
#if FASTCONV_HAVE_X86_UKR
  return has_avx2(active_isa());
#else
  return false;
#endif
}
}  // namespace

#if FASTCONV_HAVE_X86_UKR
#define FC_SBN_DISPATCH(fn, ...) (sbn_use_avx2() ? sbn_avx2::fn<T>(__VA_ARGS__) : sbn_base::fn<T>(__VA_ARGS__))
#else
#define FC_SBN_DISPATCH(fn, ...) sbn_base::fn<T>(__VA_ARGS__)
#endif

template <typename T>
void spatial_batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                                     T* out, double* mean, double* invstd, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double momentum, double eps) {
  FC_SBN_DISPATCH(forward_train, x, gamma, beta, running_mean, running_var, out, mean, invstd, N, C, HW, momentum,
                  eps);
}

template <typename T>
void spatial_batchnorm_forward_infer(const T* x, const T* gamma, const T* beta, const T* running_mean,
                                     const T* running_var, T* out, std::int64_t N, std::int64_t C,
                                     std::int64_t HW, double eps) {
  FC_SBN_DISPATCH(forward_infer, x, gamma, beta, running_mean, running_var, out, N, C, HW, eps);
}

template <typename T>
void spatial_batchnorm_backward(const T* dout, const T* x, const double* mean, const double* invstd,
                                const T* gamma, T* dx, T* dgamma, T* dbeta, std::int64_t N, std::int64_t C,
                                std::int64_t HW) {
  FC_SBN_DISPATCH(backward, dout, x, mean, invstd, gamma, dx, dgamma, dbeta, N, C, HW);
}
#undef FC_SBN_DISPATCH

// ---------------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_SPATIAL_BN_INSTANTIATE(T, S)                                                                          \
  template void spatial_batchnorm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, double*, double*, \
                                                   std::int64_t, std::int64_t, std::int64_t, double, double); \
  template void spatial_batchnorm_forward_infer<T>(const T*, const T*, const T*, const T*, const T*, T*,       \
                                                   std::int64_t, std::int64_t, std::int64_t, double);         \
  template void spatial_batchnorm_backward<T>(const T*, const T*, const double*, const double*, const T*, T*,  \
                                              T*, T*, std::int64_t, std::int64_t, std::int64_t);
FC_FLOAT_TYPES(FC_SPATIAL_BN_INSTANTIATE)
FC_HALF_TYPES(FC_SPATIAL_BN_INSTANTIATE)
#undef FC_SPATIAL_BN_INSTANTIATE

}  // namespace fastconv::cpu
