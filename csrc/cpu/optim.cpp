// optim.cpp: fused in-place optimizer updates (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, Adadelta).
// Each update is one pass over memory: it reads p, g and the state once and writes p and the state once, where
// the NumPy reference makes 3-8 passes and as many temporaries. Element-wise, so the static split over OpenMP
// threads cannot change a bit. The kernels live in optim_kernels.h; this file compiles them for baseline
// x86-64 (or any CPU) as optim_base, optim_avx2.cpp compiles them with AVX2, and the entry points below pick
// one per call from the ISA in use (same bits either way).
// Variants: optim_base, optim_avx2; each optimizer with and without weight decay (no branch in the loop).
#define FC_OPTIM_NS optim_base
#include "cpu/optim_kernels.h"

#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

namespace {
using i64 = std::int64_t;

// The AVX2 variant when the ISA in use (GEMM's: CPUID, FASTCONV_ISA or set_cpu_isa) is avx2 or avx512, which
// both imply AVX2; tests force each ISA to cover both variants.
inline bool use_avx2() {
#if FASTCONV_HAVE_X86_UKR
  const char* isa = gemm_active_isa();
  return isa[0] == 'a';
#else
  return false;
#endif
}
}  // namespace

const char* optim_variant() { return use_avx2() ? "avx2" : "baseline"; }

// -----------------------------------------------------------------------------------------------------------
// entry points: dispatch to a variant

template <typename T>
void sgd_update(T* p, const T* g, i64 n, double lr, double weight_decay) {
  if (use_avx2())
    optim_avx2::sgd_update<T>(p, g, n, lr, weight_decay);
  else
    optim_base::sgd_update<T>(p, g, n, lr, weight_decay);
}

template <typename T>
void momentum_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  if (use_avx2())
    optim_avx2::momentum_update<T>(p, g, v, n, lr, momentum, weight_decay);
  else
    optim_base::momentum_update<T>(p, g, v, n, lr, momentum, weight_decay);
}

template <typename T>
void nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  if (use_avx2())
    optim_avx2::nesterov_update<T>(p, g, v, n, lr, momentum, weight_decay);
  else
    optim_base::nesterov_update<T>(p, g, v, n, lr, momentum, weight_decay);
}

template <typename T>
void adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  if (use_avx2())
    optim_avx2::adagrad_update<T>(p, g, h, n, lr, eps, weight_decay);
  else
    optim_base::adagrad_update<T>(p, g, h, n, lr, eps, weight_decay);
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double decay_rate, double eps, double weight_decay) {
  if (use_avx2())
    optim_avx2::rmsprop_update<T>(p, g, h, n, lr, decay_rate, eps, weight_decay);
  else
    optim_base::rmsprop_update<T>(p, g, h, n, lr, decay_rate, eps, weight_decay);
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, i64 n, double lr_t, double beta1, double beta2, double eps,
                 double weight_decay) {
  if (use_avx2())
    optim_avx2::adam_update<T>(p, g, m, v, n, lr_t, beta1, beta2, eps, weight_decay);
  else
    optim_base::adam_update<T>(p, g, m, v, n, lr_t, beta1, beta2, eps, weight_decay);
}

template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, i64 n, double lr, double rho, double eps, double weight_decay) {
  if (use_avx2())
    optim_avx2::adadelta_update<T>(p, g, h, d, n, lr, rho, eps, weight_decay);
  else
    optim_base::adadelta_update<T>(p, g, h, d, n, lr, rho, eps, weight_decay);
}

// -----------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_OPTIM_INSTANTIATE(T)                                                                          \
  template void sgd_update<T>(T*, const T*, i64, double, double);                                        \
  template void momentum_update<T>(T*, const T*, T*, i64, double, double, double);                       \
  template void nesterov_update<T>(T*, const T*, T*, i64, double, double, double);                       \
  template void adagrad_update<T>(T*, const T*, T*, i64, double, double, double);                        \
  template void rmsprop_update<T>(T*, const T*, T*, i64, double, double, double, double);                \
  template void adam_update<T>(T*, const T*, T*, T*, i64, double, double, double, double, double);       \
  template void adadelta_update<T>(T*, const T*, T*, T*, i64, double, double, double, double);
FC_OPTIM_INSTANTIATE(float)
FC_OPTIM_INSTANTIATE(double)
#undef FC_OPTIM_INSTANTIATE

}  // namespace fastconv::cpu
