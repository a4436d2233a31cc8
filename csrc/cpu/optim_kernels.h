// optim_kernels.h: the fused optimizer updates, compiled once per variant. optim.cpp includes this file with
// FC_OPTIM_NS=optim_base (baseline x86-64 or any other CPU) and optim_avx2.cpp with FC_OPTIM_NS=optim_avx2
// (built with -mavx2 but without -mfma); optim.cpp dispatches between them. Both variants compute the same bits:
// no FMA, IEEE sqrt and division, and every expression in the NumPy reference's order and rounding (scalars
// rounded to T first, as NumPy does with a Python float), so float32 and float64 results equal
// fastconv.reference.optimizer's. The loops vectorise, sqrt and division included, because both files are built
// with -fno-math-errno, -ffp-contract=off and without LTO (CMakeLists.txt; sqrt only sees sums of squares plus
// eps). Everything here has internal linkage or lives in FC_OPTIM_NS, and nothing calls a std:: template, so no
// function compiled with AVX2 can be merged by the linker into the baseline path.
#ifndef FC_OPTIM_NS
#error "define FC_OPTIM_NS before including optim_kernels.h"
#endif
#include <cmath>
#include <cstdint>

#include "common/dtype.h"
#include "cpu/optim.h"
#include "cpu/threads.h"

namespace fastconv::cpu::FC_OPTIM_NS {

namespace {
using i64 = std::int64_t;

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

// The gradient the update uses: g, or g + weight_decay * p (L2), rounded in this order as the reference's
// g = g + weight_decay * p.
template <bool WD, typename T>
inline T grad(T g, T p, T wd) {
  if constexpr (WD) {
    return g + wd * p;
  } else {
    return g;
  }
}

// -----------------------------------------------------------------------------------------------------------
// kernels: p, g and the state are (n,), distinct; scalars are already rounded to T

template <typename T, bool WD>
void sgd_kernel(T* __restrict__ p, const T* __restrict__ g, i64 n, T lr, T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      p[i] = p[i] - lr * gi;
    }
  });
}

template <typename T, bool WD>
void momentum_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ v, i64 n, T lr, T mu, T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T vi = v[i] * mu - lr * gi;  // v *= momentum; v -= lr * g
      v[i] = vi;
      p[i] = p[i] + vi;
    }
  });
}

// mu2 = momentum**2 and c = (1 + momentum) * lr, both formed in double and rounded once, as the reference's
// Python scalars are.
template <typename T, bool WD>
void nesterov_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ v, i64 n, T lr, T mu, T mu2, T c,
                     T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T vi = v[i] * mu - lr * gi;
      v[i] = vi;
      // two separate in-place steps in the reference: p += mu2 * v, then p -= c * g
      const T pi = p[i] + mu2 * vi;
      p[i] = pi - c * gi;
    }
  });
}

template <typename T, bool WD>
void adagrad_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ h, i64 n, T lr, T eps, T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T hi = h[i] + gi * gi;
      h[i] = hi;
      p[i] = p[i] - (lr * gi) / (std::sqrt(hi) + eps);  // lr * g / (sqrt(h) + eps), left to right
    }
  });
}

// c = 1 - decay_rate
template <typename T, bool WD>
void rmsprop_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ h, i64 n, T lr, T rho, T c, T eps,
                    T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T hi = h[i] * rho + (c * gi) * gi;  // h *= rho; h += (1 - rho) * g * g
      h[i] = hi;
      p[i] = p[i] - (lr * gi) / (std::sqrt(hi) + eps);
    }
  });
}

// c1 = 1 - beta1, c2 = 1 - beta2
template <typename T, bool WD>
void adam_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v, i64 n, T lr_t,
                 T c1, T c2, T eps, T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T mi = m[i] + c1 * (gi - m[i]);
      const T vi = v[i] + c2 * (gi * gi - v[i]);
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] - (lr_t * mi) / (std::sqrt(vi) + eps);
    }
  });
}

// c = 1 - rho; h is the running mean of g**2, d the running mean of the squared steps
template <typename T, bool WD>
void adadelta_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ h, T* __restrict__ d, i64 n, T lr,
                     T rho, T c, T eps, T wd) {
  parallel_range(n, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; ++i) {
      const T gi = grad<WD>(g[i], p[i], wd);
      const T hi = h[i] * rho + (c * gi) * gi;
      const T dx = (std::sqrt(d[i] + eps) / std::sqrt(hi + eps)) * gi;
      h[i] = hi;
      d[i] = d[i] * rho + (c * dx) * dx;
      p[i] = p[i] - lr * dx;
    }
  });
}

}  // namespace

// -----------------------------------------------------------------------------------------------------------
// entry points: round the scalars to T once, pick the weight-decay variant

template <typename T>
void sgd_update(T* p, const T* g, i64 n, double lr, double weight_decay) {
  if (weight_decay != 0.0)
    sgd_kernel<T, true>(p, g, n, T(lr), T(weight_decay));
  else
    sgd_kernel<T, false>(p, g, n, T(lr), T(0));
}

template <typename T>
void momentum_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  if (weight_decay != 0.0)
    momentum_kernel<T, true>(p, g, v, n, T(lr), T(momentum), T(weight_decay));
  else
    momentum_kernel<T, false>(p, g, v, n, T(lr), T(momentum), T(0));
}

template <typename T>
void nesterov_update(T* p, const T* g, T* v, i64 n, double lr, double momentum, double weight_decay) {
  const T mu2 = T(momentum * momentum), c = T((1.0 + momentum) * lr);
  if (weight_decay != 0.0)
    nesterov_kernel<T, true>(p, g, v, n, T(lr), T(momentum), mu2, c, T(weight_decay));
  else
    nesterov_kernel<T, false>(p, g, v, n, T(lr), T(momentum), mu2, c, T(0));
}

template <typename T>
void adagrad_update(T* p, const T* g, T* h, i64 n, double lr, double eps, double weight_decay) {
  if (weight_decay != 0.0)
    adagrad_kernel<T, true>(p, g, h, n, T(lr), T(eps), T(weight_decay));
  else
    adagrad_kernel<T, false>(p, g, h, n, T(lr), T(eps), T(0));
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* h, i64 n, double lr, double decay_rate, double eps, double weight_decay) {
  const T c = T(1.0 - decay_rate);
  if (weight_decay != 0.0)
    rmsprop_kernel<T, true>(p, g, h, n, T(lr), T(decay_rate), c, T(eps), T(weight_decay));
  else
    rmsprop_kernel<T, false>(p, g, h, n, T(lr), T(decay_rate), c, T(eps), T(0));
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, i64 n, double lr_t, double beta1, double beta2, double eps,
                 double weight_decay) {
  const T c1 = T(1.0 - beta1), c2 = T(1.0 - beta2);
  if (weight_decay != 0.0)
    adam_kernel<T, true>(p, g, m, v, n, T(lr_t), c1, c2, T(eps), T(weight_decay));
  else
    adam_kernel<T, false>(p, g, m, v, n, T(lr_t), c1, c2, T(eps), T(0));
}

template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, i64 n, double lr, double rho, double eps, double weight_decay) {
  const T c = T(1.0 - rho);
  if (weight_decay != 0.0)
    adadelta_kernel<T, true>(p, g, h, d, n, T(lr), T(rho), c, T(eps), T(weight_decay));
  else
    adadelta_kernel<T, false>(p, g, h, d, n, T(lr), T(rho), c, T(eps), T(0));
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
  template void adadelta_update<T>(T*, const T*, T*, T*, i64, double, double, double, double);
FC_FLOAT_TYPES(FC_OPTIM_INSTANTIATE)
#undef FC_OPTIM_INSTANTIATE

}  // namespace fastconv::cpu::FC_OPTIM_NS
