// optim_kernels.h: the fused optimizer updates, compiled once per variant. optim.cpp includes this file with
// FC_OPTIM_NS=optim_base (baseline x86-64 or any other CPU) and optim_avx2.cpp with FC_OPTIM_NS=optim_avx2
// (built with -mavx2 but without -mfma); optim.cpp dispatches between them. Both variants compute the same bits:
// no FMA, IEEE sqrt and division, and every expression in the NumPy reference's order and rounding (scalars
// rounded to T first, as NumPy does with a Python float), so float32 and float64 results equal
// fastconv.reference.optimizer's. The loops vectorise, sqrt and division included, because both files are built
// with -fno-math-errno, -ffp-contract=off and without LTO (CMakeLists.txt; sqrt only sees sums of squares plus
// eps). Everything here has internal linkage or lives in FC_OPTIM_NS, and nothing calls a std:: template, so no
// function compiled with AVX2 can be merged by the linker into the baseline path.
// float16 / bfloat16 parameters: their state is kept in the parameter's dtype (as PyTorch does); each tile of
// kTile elements of p, g and the state is widened to float32 (cpu/half_convert.h, itself dispatched per ISA),
// updated by the float32 step (scalars rounded to float32) and rounded back once per stored value.
#ifndef FC_OPTIM_NS
#error "define FC_OPTIM_NS before including optim_kernels.h"
#endif
#include <cmath>
#include <cstdint>

#include "common/dtype.h"
#include "common/optim_step.h"
#include "cpu/half_convert.h"
#include "cpu/optim.h"
#include "cpu/threads.h"

namespace fastconv::cpu::FC_OPTIM_NS {

namespace {
using i64 = std::int64_t;
using namespace optim_step;

// Below this many elements the OpenMP fork/join costs more than the pass itself (a DeepConvNet conv weight
// of 9,216 floats updates in ~2 us on one core; waking a second thread costs about as much).
constexpr i64 kParallelMin = 1 << 15;
// Elements per block handed to a thread: whole 64-byte lines, so that no two threads write one line.
constexpr i64 kBlock = 1 << 12;

// Runs body(lo, hi) over [0, n): on the calling thread, with no OpenMP call at all, below kParallelMin or with
// one thread (a region with a false if-clause still enters libgomp, per parameter); else in static blocks.
// Element-wise bodies give the same bits for any split.
template <typename Body>
inline void parallel_range(i64 n, const Body& body) {
  const int nt = num_threads();
  if (n < kParallelMin || nt <= 1) {
    body(0, n);
    return;
  }
  const i64 blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (i64 b = 0; b < blocks; ++b) body(b * kBlock, (b + 1) * kBlock < n ? (b + 1) * kBlock : n);
}

// Elements of a 16-bit parameter widened at a time: p, g and two states in float32 fill 4 KB of stack.
constexpr i64 kTile = 256;

// The update of one tile of a 16-bit parameter: p, g and the S state arrays widened into float32 buffers, the
// float32 step over them (vectorised), the written arrays narrowed back.
template <bool WD, typename Opt, typename H, typename... St>
inline void half_tile(const Opt& opt, i64 lo, i64 w, H* p, const H* g, St*... st) {
  constexpr int S = sizeof...(St);
  float pb[kTile], gb[kTile], sb[S > 0 ? S : 1][kTile];
  H* sp[S > 0 ? S : 1] = {st...};
  widen(p + lo, pb, w);
  widen(g + lo, gb, w);
  for (int j = 0; j < S; ++j) widen(sp[j] + lo, sb[j], w);
  if constexpr (S == 0) {
#pragma omp simd
    for (i64 i = 0; i < w; ++i) opt.template step<WD>(pb[i], gb[i]);
  } else if constexpr (S == 1) {
#pragma omp simd
    for (i64 i = 0; i < w; ++i) opt.template step<WD>(pb[i], gb[i], sb[0][i]);
  } else {
#pragma omp simd
    for (i64 i = 0; i < w; ++i) opt.template step<WD>(pb[i], gb[i], sb[0][i], sb[1][i]);
  }
  narrow(pb, p + lo, w);
  for (int j = 0; j < S; ++j) narrow(sb[j], sp[j] + lo, w);
}

// One pass: body(i) for every i, in parallel_range's blocks. The steps (common/optim_step.h) are inlined here, so
// the loop vectorises with them. A 16-bit parameter goes tile by tile through half_tile.
template <bool WD, typename Opt, typename P, typename... Arrays>
inline void update(const Opt& opt, i64 n, P* p, Arrays... arrays) {
  if constexpr (is_half_v<P>) {
    parallel_range(n, [&](i64 lo, i64 hi) {
      for (i64 t = lo; t < hi; t += kTile) half_tile<WD>(opt, t, hi - t < kTile ? hi - t : kTile, p, arrays...);
    });
  } else {
    parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
      for (i64 i = lo; i < hi; ++i) opt.template step<WD>(p[i], arrays[i]...);
    });
  }
}

// The weight-decay variant (no branch in the loop) of update.
template <typename Opt, typename... Arrays>
inline void run(const Opt& opt, double weight_decay, i64 n, Arrays... arrays) {
  if (weight_decay != 0.0)
    update<true>(opt, n, arrays...);
  else
    update<false>(opt, n, arrays...);
}

}  // namespace

// -----------------------------------------------------------------------------------------------------------
// entry points: round the scalars to T (float32 for the 16-bit types) once, pick the weight-decay variant

template <typename T>
void sgd_update(T* p, const T* g, i64 n, double lr, double weight_decay) {
  run(Sgd<compute_t<T>>::make(lr, weight_decay), weight_decay, n, p, g);
}

template <typename T>
void momentum_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(Momentum<compute_t<T>>::make(lr, momentum, weight_decay), weight_decay, n, p, g, v);
}

template <typename T>
void nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(Nesterov<compute_t<T>>::make(lr, momentum, weight_decay), weight_decay, n, p, g, v);
}

template <typename T>
void adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  run(AdaGrad<compute_t<T>>::make(lr, eps, weight_decay), weight_decay, n, p, g, h);
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double decay_rate, double eps, double weight_decay) {
  run(RMSprop<compute_t<T>>::make(lr, decay_rate, eps, weight_decay), weight_decay, n, p, g, h);
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, i64 n, double lr_t, double beta1, double beta2, double eps,
                 double weight_decay) {
  run(Adam<compute_t<T>>::make(lr_t, beta1, beta2, eps, weight_decay), weight_decay, n, p, g, m, v);
}

template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, i64 n, double lr, double rho, double eps, double weight_decay) {
  run(Adadelta<compute_t<T>>::make(lr, rho, eps, weight_decay), weight_decay, n, p, g, h, d);
}

template <typename T>
void keras_nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  run(KerasNesterov<compute_t<T>>::make(lr, momentum, weight_decay), weight_decay, n, p, g, v);
}

template <typename T>
void keras_adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  run(KerasAdagrad<compute_t<T>>::make(lr, eps, weight_decay), weight_decay, n, p, g, h);
}

template <typename T>
void keras_rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double rho, double eps, double weight_decay) {
  run(KerasRMSprop<compute_t<T>>::make(lr, rho, eps, weight_decay), weight_decay, n, p, g, h);
}

// -----------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_OPTIM_INSTANTIATE(T, S)                                                                            \
  template void sgd_update<T>(T*, const T*, i64, double, double);                                        \
  template void momentum_update<T>(T*, const T*, T*, i64, double, double, double);                       \
  template void nesterov_update<T>(T*, const T*, T*, i64, double, double, double);                       \
  template void adagrad_update<T>(T*, const T*, T*, i64, double, double, double);                        \
  template void rmsprop_update<T>(T*, const T*, T*, i64, double, double, double, double);                \
  template void adam_update<T>(T*, const T*, T*, T*, i64, double, double, double, double, double);       \
  template void adadelta_update<T>(T*, const T*, T*, T*, i64, double, double, double, double);              \
  template void keras_nesterov_update<T>(T*, const T*, T*, i64, double, double, double);                 \
  template void keras_adagrad_update<T>(T*, const T*, T*, i64, double, double, double);                  \
  template void keras_rmsprop_update<T>(T*, const T*, T*, i64, double, double, double, double);
FC_FLOAT_TYPES(FC_OPTIM_INSTANTIATE)
FC_HALF_TYPES(FC_OPTIM_INSTANTIATE)
#undef FC_OPTIM_INSTANTIATE

}  // namespace fastconv::cpu::FC_OPTIM_NS
