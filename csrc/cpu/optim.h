// optim.h: fused in-place optimizer updates, one pass over a parameter p, its gradient g and its state, all
// C-contiguous arrays of n elements in the parameter's dtype (any shape: element-wise). p, g and each
// state array must not overlap (the kernels are declared __restrict__; the bindings check it).
// The formulas, and the order of their roundings, are those of fastconv.reference.optimizer (the book's
// common/optimizer.py plus Adadelta); every double scalar is rounded to T once, as NumPy rounds a Python
// float operand. With weight_decay != 0 the gradient used is g + weight_decay * p (L2).
//   sgd:      p -= lr * g
//   momentum: v = v*momentum - lr*g; p += v
//   nesterov: the book's form: v = v*momentum - lr*g; p += momentum**2 * v; p -= (1 + momentum)*lr * g
//   adagrad:  h += g*g; p -= lr*g / (sqrt(h) + eps)
//   rmsprop:  h = h*decay_rate + (1 - decay_rate)*g*g; p -= lr*g / (sqrt(h) + eps)
//   adam:     the book's form, bias correction folded into lr_t by the caller:
//             m += (1-beta1)*(g - m); v += (1-beta2)*(g*g - v); p -= lr_t*m / (sqrt(v) + eps)
//   adadelta: Zeiler 2012: h = h*rho + (1-rho)*g*g; dx = sqrt(d + eps) / sqrt(h + eps) * g;
//             d = d*rho + (1-rho)*dx*dx; p -= lr*dx
//   Keras 3's forms, in its order of operations (fastconv.keras.optimizers):
//   keras_nesterov: v = v*momentum - g*lr; p += v*momentum - g*lr
//   keras_adagrad:  h += g*g; p -= lr*g / sqrt(h + eps)
//   keras_rmsprop:  h = rho*h + (1-rho)*(g*g); p -= lr*g / sqrt(h + eps)
// fastconv::cpu::<op>_update picks a variant at run time: optim_avx2 (AVX2, no FMA) when the ISA in use
// (cpu/isa.h: FASTCONV_ISA / set_cpu_isa, else CPUID) has AVX2, otherwise optim_base. The variants give the same
// bits. optim_kernels.h defines and instantiates both variants (optim.cpp, optim_avx2.cpp); the dispatching
// entry points below are inline and need no instantiation of their own.
#pragma once
#include <cstdint>

#define FC_OPTIM_DECLARATIONS                                                                                     \
  template <typename T>                                                                                           \
  void sgd_update(T* p, const T* g, std::int64_t n, double lr, double weight_decay);                              \
  template <typename T>                                                                                           \
  void momentum_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);  \
  template <typename T>                                                                                           \
  void nesterov_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);  \
  template <typename T>                                                                                           \
  void adagrad_update(T* p, const T* g, T* h, std::int64_t n, double lr, double eps, double weight_decay);        \
  template <typename T>                                                                                           \
  void rmsprop_update(T* p, const T* g, T* h, std::int64_t n, double lr, double decay_rate, double eps,           \
                      double weight_decay);                                                                       \
  template <typename T>                                                                                           \
  void adam_update(T* p, const T* g, T* m, T* v, std::int64_t n, double lr_t, double beta1, double beta2,         \
                   double eps, double weight_decay);                                                              \
  template <typename T>                                                                                           \
  void adadelta_update(T* p, const T* g, T* h, T* d, std::int64_t n, double lr, double rho, double eps,           \
                       double weight_decay);                                                                      \
  template <typename T>                                                                                           \
  void keras_nesterov_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum,                 \
                             double weight_decay);                                                                \
  template <typename T>                                                                                           \
  void keras_adagrad_update(T* p, const T* g, T* h, std::int64_t n, double lr, double eps, double weight_decay);  \
  template <typename T>                                                                                           \
  void keras_rmsprop_update(T* p, const T* g, T* h, std::int64_t n, double lr, double rho, double eps,           \
                            double weight_decay);

namespace fastconv::cpu::optim_base {
FC_OPTIM_DECLARATIONS  // optim.cpp
}
namespace fastconv::cpu::optim_avx2 {
FC_OPTIM_DECLARATIONS  // optim_avx2.cpp (x86-64 builds only)
}
#undef FC_OPTIM_DECLARATIONS

namespace fastconv::cpu {

// Whether the entry points use the AVX2 variant now (the ISA in use has AVX2; never on non-x86 builds).
bool optim_use_avx2();
// The name of the variant the entry points use now: "avx2" or "baseline".
const char* optim_variant();

// The dispatching entry points, one per update: fastconv::cpu::<op>_update<T>(...) takes the arguments of the
// variants' declarations above (pointers and scalars, passed by value: nothing here instantiates a std::
// template, see optim_kernels.h) and calls the variant the ISA in use selects.
#if FASTCONV_HAVE_X86_UKR
#define FC_OPTIM_DISPATCH_(op)                                                          \
  template <typename T, typename... Args>                                               \
  inline void op(Args... args) {                                                        \
    if (optim_use_avx2())                                                               \
      optim_avx2::op<T>(args...);                                                       \
    else                                                                                \
      optim_base::op<T>(args...);                                                       \
  }
#else
#define FC_OPTIM_DISPATCH_(op)                                                          \
  template <typename T, typename... Args>                                               \
  inline void op(Args... args) {                                                        \
    optim_base::op<T>(args...);                                                         \
  }
#endif
FC_OPTIM_DISPATCH_(sgd_update) FC_OPTIM_DISPATCH_(momentum_update) FC_OPTIM_DISPATCH_(nesterov_update)
FC_OPTIM_DISPATCH_(adagrad_update) FC_OPTIM_DISPATCH_(rmsprop_update) FC_OPTIM_DISPATCH_(adam_update)
FC_OPTIM_DISPATCH_(adadelta_update) FC_OPTIM_DISPATCH_(keras_nesterov_update)
FC_OPTIM_DISPATCH_(keras_adagrad_update) FC_OPTIM_DISPATCH_(keras_rmsprop_update)
#undef FC_OPTIM_DISPATCH_

}  // namespace fastconv::cpu
