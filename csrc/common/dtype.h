// dtype.h: the element types every kernel is built for, listed once. FC_FLOAT_TYPES(X) expands X(T, suffix) for
// each: explicit instantiations are written FC_FLOAT_TYPES(FC_<OP>_INSTANTIATE), the bindings register
// <name>_<suffix> for each type through for_each_float (bindings/bind_util.h: FC_DEF_FLOATS), so a new dtype
// (float16, bfloat16) joins this list and every op follows. The Python side lists the same suffixes in
// fastconv/_backend.py (KERNEL_DTYPES).
// The 16-bit storage types (common/half.h: f16, bf16; arithmetic in float32) are a list of their own,
// FC_HALF_TYPES, because they were added op by op: an op instantiates and registers FC_HALF_TYPES as well
// (FC_DEF_HALVES_PTR), and fastconv/_checks.py accepts float16 / bfloat16 for the ops whose wrappers ask for it
// (floats(..., half=True)). Since 2026-12-07 every op in fastconv.ops has them (tests/test_half.py,
// test_every_op_takes_half), so FC_HALF_TYPES could join FC_FLOAT_TYPES; several ops instantiate their 16-bit
// variants from their own code (a float32 staging of rows or tiles), which keeps the lists apart for now.
// The compute policy's types (common/policy.h: float64 storage computed in float32 / float16 / bfloat16) are a
// third list, FC_POLICY_TYPES, for the ops whose time is in GEMMs (convolution, deconvolution, gemm, affine):
// their bindings register name_f64_as_f32, ... (FC_DEF_POLICY_PTR), and fastconv/_backend.py's kernel() picks
// them for float64 arrays while a policy is set.
#pragma once

#include "common/half.h"
#include "common/policy.h"

#define FC_FLOAT_TYPES(X) X(float, f32) X(double, f64)
#define FC_HALF_TYPES(X) X(::fastconv::f16, f16) X(::fastconv::bf16, bf16)
#define FC_POLICY_TYPES(X)                                                         \
  X(::fastconv::f64_as_f32, f64_as_f32) X(::fastconv::f64_as_f16, f64_as_f16) \
      X(::fastconv::f64_as_bf16, f64_as_bf16)

namespace fastconv {

// The suffix of T's binding entry points ("f32" for conv_forward_f32).
template <typename T>
struct dtype_suffix;
#define FC_DTYPE_SUFFIX_(T, S)                  \
  template <>                                   \
  struct dtype_suffix<T> {                      \
    static constexpr const char* value = #S;    \
  };
FC_FLOAT_TYPES(FC_DTYPE_SUFFIX_)
FC_HALF_TYPES(FC_DTYPE_SUFFIX_)
FC_POLICY_TYPES(FC_DTYPE_SUFFIX_)
#undef FC_DTYPE_SUFFIX_

template <typename T>
struct type_tag {
  using type = T;
};

// Calls f(type_tag<T>{}) for every T of FC_FLOAT_TYPES, in order.
template <typename F>
void for_each_float(F&& f) {
#define FC_CALL_WITH_TAG_(T, S) f(type_tag<T>{});
  FC_FLOAT_TYPES(FC_CALL_WITH_TAG_)
#undef FC_CALL_WITH_TAG_
}

// Calls f(type_tag<T>{}) for every T of FC_HALF_TYPES, in order.
template <typename F>
void for_each_half(F&& f) {
#define FC_CALL_WITH_TAG_(T, S) f(type_tag<T>{});
  FC_HALF_TYPES(FC_CALL_WITH_TAG_)
#undef FC_CALL_WITH_TAG_
}

// Calls f(type_tag<T>{}) for every T of FC_POLICY_TYPES, in order.
template <typename F>
void for_each_policy(F&& f) {
#define FC_CALL_WITH_TAG_(T, S) f(type_tag<T>{});
  FC_POLICY_TYPES(FC_CALL_WITH_TAG_)
#undef FC_CALL_WITH_TAG_
}

}  // namespace fastconv
