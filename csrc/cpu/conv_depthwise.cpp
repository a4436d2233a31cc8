// conv_depthwise.cpp: the depthwise convolution (groups == C) entry points of conv.h. The direct kernels live
// in conv_depthwise_kernels.h; this file compiles them for baseline x86-64 (or any CPU) as dw_base,
// conv_depthwise_avx2.cpp (AVX2+FMA) and conv_depthwise_avx512.cpp (AVX-512) compile them again, and each call
// picks the variant of the ISA in use (cpu/isa.h: CPUID, FASTCONV_ISA or set_cpu_isa), so the ISA tests cover
// every variant. FMA variants round differently from the baseline (within the tests' tolerances).
#define FC_DW_NS dw_base
#include "cpu/conv_depthwise_kernels.h"

#include "cpu/conv.h"
#include "cpu/isa.h"
#include "cpu/workspace.h"

#include <algorithm>

namespace fastconv::cpu {

#if FASTCONV_HAVE_X86_UKR
#define FC_DW_VARIANT_DECL(NS)                                                                               \
  namespace NS {                                                                                             \
  template <typename T>                                                                                      \
  void depthwise_forward(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int, bool, T*, index_t); \
  template <typename T>                                                                                      \
  void depthwise_backward(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, int, T*, T*,   \
                          index_t);                                                                          \
  }
FC_DW_VARIANT_DECL(dw_avx2)
FC_DW_VARIANT_DECL(dw_avx512)
#undef FC_DW_VARIANT_DECL
#endif

namespace {

// Values of scratch one thread needs for the wide path of geometry g (conv_depthwise_kernels.h: WideLayout,
// with the largest kVB, float's), and a vector's worth of slack.
index_t wide_scratch(const ConvGeom& g) { return dw_base::WideLayout(g, 64).total() + 64; }

}  // namespace

template <typename T>
void depthwise_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                       bool relu) {
  const index_t per = std::max(wide_scratch(g), dw_base::ClBlock<T>::scratch(g, 64 / sizeof(T)) + 64);
  Scratch<T> ws(static_cast<std::size_t>(per * nthreads));
#if FASTCONV_HAVE_X86_UKR
  switch (active_isa()) {
    case Isa::avx512:
      return dw_avx512::depthwise_forward<T>(x, w, b, out, g, FN, nthreads, relu, ws.data(), per);
    case Isa::avx2: return dw_avx2::depthwise_forward<T>(x, w, b, out, g, FN, nthreads, relu, ws.data(), per);
    default: break;
  }
#endif
  dw_base::depthwise_forward<T>(x, w, b, out, g, FN, nthreads, relu, ws.data(), per);
}

template <typename T>
void depthwise_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                        index_t FN, int nthreads) {
  // one partial dW and db per (image, filter), summed over the images in order by the kernel; the channels-last
  // path's scratch holds two blocks: the input's and the flipped forward's (its input gradient at stride 1)
  Scratch<T> part(static_cast<std::size_t>(g.N * FN * (g.FH * g.FW + 1)));
  constexpr index_t lanes = 64 / sizeof(T);
  const index_t cl = dw_base::ClBlock<T>::scratch(g, lanes) +
                     (dw_base::cl_flip_ok(g) ? dw_base::ClBlock<T>::scratch(dw_base::flipped_geom(g), lanes) : 0);
  const index_t per = std::max(wide_scratch(g), cl + 64);
  Scratch<T> ws(static_cast<std::size_t>(per * nthreads));
#if FASTCONV_HAVE_X86_UKR
  switch (active_isa()) {
    case Isa::avx512:
      return dw_avx512::depthwise_backward<T>(x, w, dout, dx, dw, db, g, FN, nthreads, part.data(), ws.data(), per);
    case Isa::avx2:
      return dw_avx2::depthwise_backward<T>(x, w, dout, dx, dw, db, g, FN, nthreads, part.data(), ws.data(), per);
    default: break;
  }
#endif
  dw_base::depthwise_backward<T>(x, w, dout, dx, dw, db, g, FN, nthreads, part.data(), ws.data(), per);
}

#define FC_DW_ENTRY_INSTANTIATE(T, S)                                                                        \
  template void depthwise_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&, index_t, int, bool); \
  template void depthwise_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvGeom&, index_t, int);
FC_FLOAT_TYPES(FC_DW_ENTRY_INSTANTIATE)
#undef FC_DW_ENTRY_INSTANTIATE

}  // namespace fastconv::cpu
