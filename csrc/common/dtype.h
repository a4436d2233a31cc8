// dtype.h: the element types every kernel is built for, listed once. FC_FLOAT_TYPES(X) expands X(T, suffix) for
// each: explicit instantiations are written FC_FLOAT_TYPES(FC_<OP>_INSTANTIATE), the bindings register
// <name>_<suffix> for each type through for_each_float (bindings/bind_util.h: FC_DEF_FLOATS), so a new dtype
// (float16, bfloat16) joins this list and every op follows. The Python side lists the same suffixes in
// fastconv/_backend.py (KERNEL_DTYPES).
#pragma once

#define FC_FLOAT_TYPES(X) X(float, f32) X(double, f64)

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

}  // namespace fastconv
