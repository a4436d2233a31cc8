// optim.cu: the fused optimizer updates on the GPU, one thread per element, each running the same per-element step
// as the CPU kernels (common/optim_step.h): with this file built with --fmad=false (CMakeLists.txt) and IEEE
// division and square root (nvcc's default), float32 and float64 results equal the NumPy reference's bits.
#include "common/dtype.h"
#include "common/optim_step.h"
#include "cuda/cuda_util.cuh"
#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {

using namespace optim_step;

template <bool WD, typename Opt, typename... Arrays>
__global__ void update_k(Opt opt, i64 n, Arrays... arrays) {
  FC_GRID_LOOP(i, n) opt.template step<WD>(arrays[i]...);
}

template <typename Opt, typename... Arrays>
void run(const Opt& opt, double weight_decay, i64 n, const char* name, Arrays... arrays) {
  if (n == 0) return;
  if (weight_decay != 0.0)
    update_k<true><<<blocks_for(n), kThreads, 0, stream()>>>(opt, n, arrays...);
  else
    update_k<false><<<blocks_for(n), kThreads, 0, stream()>>>(opt, n, arrays...);
  FC_CUDA_LAUNCHED(name);
}

}  // namespace

template <typename T>
void sgd_update(T* p, const T* g, i64 n, double lr, double weight_decay) {
  run(Sgd<T>::make(lr, weight_decay), weight_decay, n, "sgd_update", p, g);
}

template <typename T>
void momentum_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(Momentum<T>::make(lr, momentum, weight_decay), weight_decay, n, "momentum_update", p, g, v);
}

template <typename T>
void nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(Nesterov<T>::make(lr, momentum, weight_decay), weight_decay, n, "nesterov_update", p, g, v);
}

template <typename T>
void adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  run(AdaGrad<T>::make(lr, eps, weight_decay), weight_decay, n, "adagrad_update", p, g, h);
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double decay_rate, double eps, double weight_decay) {
  run(RMSprop<T>::make(lr, decay_rate, eps, weight_decay), weight_decay, n, "rmsprop_update", p, g, h);
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, i64 n, double lr_t, double beta1, double beta2, double eps,
                 double weight_decay) {
  run(Adam<T>::make(lr_t, beta1, beta2, eps, weight_decay), weight_decay, n, "adam_update", p, g, m, v);
}

template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, i64 n, double lr, double rho, double eps, double weight_decay) {
  run(Adadelta<T>::make(lr, rho, eps, weight_decay), weight_decay, n, "adadelta_update", p, g, h, d);
}

template <typename T>
void keras_nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(KerasNesterov<T>::make(lr, momentum, weight_decay), weight_decay, n, "keras_nesterov_update", p, g, v);
}

template <typename T>
void keras_adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  run(KerasAdagrad<T>::make(lr, eps, weight_decay), weight_decay, n, "keras_adagrad_update", p, g, h);
}

template <typename T>
void keras_rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double rho, double eps, double weight_decay) {
  run(KerasRMSprop<T>::make(lr, rho, eps, weight_decay), weight_decay, n, "keras_rmsprop_update", p, g, h);
}

#define FC_OPTIM_INSTANTIATE(T, S)                                                                       \
  template void sgd_update<T>(T*, const T*, i64, double, double);                               \
  template void momentum_update<T>(T*, const T*, T*, i64, double, double, double);              \
  template void nesterov_update<T>(T*, const T*, T*, i64, double, double, double);              \
  template void adagrad_update<T>(T*, const T*, T*, i64, double, double, double);               \
  template void rmsprop_update<T>(T*, const T*, T*, i64, double, double, double, double);       \
  template void adam_update<T>(T*, const T*, T*, T*, i64, double, double, double, double, double); \
  template void adadelta_update<T>(T*, const T*, T*, T*, i64, double, double, double, double);  \
  template void keras_nesterov_update<T>(T*, const T*, T*, i64, double, double, double);       \
  template void keras_adagrad_update<T>(T*, const T*, T*, i64, double, double, double);        \
  template void keras_rmsprop_update<T>(T*, const T*, T*, i64, double, double, double, double);
FC_FLOAT_TYPES(FC_OPTIM_INSTANTIATE)
#undef FC_OPTIM_INSTANTIATE

}  // namespace fastconv::cuda
