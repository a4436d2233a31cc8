// bind_util.h: the checks every binding makes before it hands a pointer to a kernel.
// A binding never trusts an array it did not check: dtype, ndim, every extent, C-contiguity and (for
// outputs) writeability. ops.py prepares arrays so these checks pass; they are the second line of defence
// for anyone calling fastconv._cpu directly. Failures raise TypeError / ValueError naming the argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <type_traits>

#include "common/check.h"
#include "common/dtype.h"

namespace fastconv::bind {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
  if (a.ndim() == 1) os << ",";
  os << ")";
  return os.str();
}

inline std::string shape_str(std::initializer_list<std::int64_t> s) {
  std::ostringstream os;
  os << "(";
  std::size_t i = 0;
  for (auto v : s) os << (i++ ? ", " : "") << v;
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

// The NumPy dtype of T: float16 for f16, ml_dtypes.bfloat16 for bf16 (ml_dtypes imported on first use only),
// float64 for the compute policy's types (common/policy.h).
template <typename T>
inline py::dtype dtype_of() {
  if constexpr (is_staged_v<T> && sizeof(T) == sizeof(double)) {
    return py::dtype::of<double>();
  } else if constexpr (std::is_same_v<T, f16>) {
    return py::dtype("float16");
  } else if constexpr (std::is_same_v<T, bf16>) {
    return py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16"));
  } else {
    return py::dtype::of<T>();
  }
}

template <typename T>
inline void check_array(const py::array& a, const char* name, std::initializer_list<std::int64_t> shape,
                        bool writeable) {
  const py::dtype want = dtype_of<T>();
  if (!a.dtype().equal(want))  // equal, not is: pickled or aliased dtypes; byte-swapped ones differ
    throw py::type_error(std::string(name) + ": dtype " + std::string(py::str(a.dtype())) + ", expected " +
                         std::string(py::str(want)));
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  if (ok) {
    py::ssize_t i = 0;
    for (auto s : shape) ok = ok && a.shape(i++) == s;
  }
  if (!ok) throw py::value_error(std::string(name) + ": shape " + shape_str(a) + ", expected " + shape_str(shape));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": array must be C-contiguous");
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + ": array is read-only");
}

// Pointer to the data of an input array after checking it has exactly `shape`.
template <typename T>
inline const T* in_ptr(const py::array& a, const char* name, std::initializer_list<std::int64_t> shape) {
  check_array<T>(a, name, shape, false);
  return static_cast<const T*>(a.data());
}

// Pointer to the data of an output array after checking it has exactly `shape` and is writeable.
template <typename T>
inline T* out_ptr(py::array& a, const char* name, std::initializer_list<std::int64_t> shape) {
  check_array<T>(a, name, shape, true);
  return static_cast<T*>(a.mutable_data());
}

// An optional input (a bias, ...): the array, or None (nullptr)
template <typename T>
const T* optional_in(const py::object& a, const char* name, std::int64_t n) {
  if (a.is_none()) return nullptr;
  if (!py::isinstance<py::array>(a)) throw py::type_error(std::string(name) + ": expected a NumPy array or None");
  return in_ptr<T>(py::reinterpret_borrow<py::array>(a), name, {n});
}

// An optional output (an input gradient, maxpool's argmax, ...): the array itself, or None (nullptr)
template <typename T>
T* optional_out(const py::object& a, const char* name, std::initializer_list<std::int64_t> shape) {
  if (a.is_none()) return nullptr;
  // (no conversion: an array made from another object here would take the result and be dropped)
  if (!py::isinstance<py::array>(a)) throw py::type_error(std::string(name) + ": expected a NumPy array or None");
  py::array arr = py::reinterpret_borrow<py::array>(a);
  return out_ptr<T>(arr, name, shape);
}

inline std::int64_t dim(const py::array& a, const char* name, int ndim, int i) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got shape " +
                          shape_str(a));
  return a.shape(i);
}

// The extents of a 4-D array (N, C, H, W) with every dimension >= 1 and a product that fits in int64 (the
// per-channel and per-plane kernels: spatial batch norm, global pooling, upsampling).
struct Nchw {
  std::int64_t N, C, H, W;
};

inline Nchw nchw(const py::array& a, const char* name) {
  const Nchw d{dim(a, name, 4, 0), dim(a, name, 4, 1), dim(a, name, 4, 2), dim(a, name, 4, 3)};
  if (d.N < 1 || d.C < 1 || d.H < 1 || d.W < 1)
    throw py::value_error(std::string(name) + ": shape " + shape_str(a) + ", expected every dimension >= 1");
  checked_size(name, d.N, d.C, d.H, d.W);
  return d;
}

// Extents of a 2-D array of rows (N) by columns, both >= 1, whose element count fits an int64: the one
// check of the row-wise ops (batch norm's (N, D), the losses' (N, K)). cols names the columns in the message.
struct Matrix {
  std::int64_t rows, cols;
};

inline Matrix matrix_dims(const py::array& a, const char* name, const char* cols) {
  const Matrix m{dim(a, name, 2, 0), dim(a, name, 2, 1)};
  if (m.rows < 1 || m.cols < 1)
    throw py::value_error(std::string(name) + ": shape " + shape_str(a) + ", expected (N, " + cols +
                          ") with N >= 1 and " + cols + " >= 1");
  checked_size(name, m.rows, m.cols);
  return m;
}

// Register fn<T> as name_<suffix> for every T of FC_FLOAT_TYPES (common/dtype.h): name_f32, name_f64, ...
#define FC_DEF_FLOATS(m, name, fn, doc, ...) FC_DEF_FLOATS_PTR(m, name, &fn<T_>, doc, __VA_ARGS__)

// Registers ptr once per type of a dtype list (for_each: for_each_float, for_each_half, for_each_policy) as
// name_<suffix>; T_ names the type inside ptr.
#define FC_DEF_EACH_PTR_(for_each, m, name, ptr, doc, ...)                                            \
  ::fastconv::for_each([&](auto tag) {                                                                \
    using T_ = typename decltype(tag)::type;                                                          \
    (m).def((std::string(name) + "_" + ::fastconv::dtype_suffix<T_>::value).c_str(), ptr, doc,        \
            __VA_ARGS__);                                                                             \
  })

// The same for a function pointer written in terms of the type T_, e.g. (&forward_py<T_, cpu::relu_forward<T_>>)
// for a binding template that takes its kernel as a template argument (parenthesised: it holds a comma).
#define FC_DEF_FLOATS_PTR(m, name, ptr, doc, ...) FC_DEF_EACH_PTR_(for_each_float, m, name, ptr, doc, __VA_ARGS__)

// The same for the 16-bit storage types of FC_HALF_TYPES (name_f16, name_bf16), for the ops that have them.
#define FC_DEF_HALVES_PTR(m, name, ptr, doc, ...) FC_DEF_EACH_PTR_(for_each_half, m, name, ptr, doc, __VA_ARGS__)
#define FC_DEF_HALVES(m, name, fn, doc, ...) FC_DEF_HALVES_PTR(m, name, &fn<T_>, doc, __VA_ARGS__)

// The same for the compute policy's types of FC_POLICY_TYPES (name_f64_as_f32, name_f64_as_f16, ...).
#define FC_DEF_POLICY_PTR(m, name, ptr, doc, ...) FC_DEF_EACH_PTR_(for_each_policy, m, name, ptr, doc, __VA_ARGS__)
#define FC_DEF_POLICY(m, name, fn, doc, ...) FC_DEF_POLICY_PTR(m, name, &fn<T_>, doc, __VA_ARGS__)

// Both lists at once, one docstring: name_f32, name_f64, name_f16, name_bf16.
#define FC_DEF_ALL(m, name, fn, doc, ...)              \
  FC_DEF_FLOATS(m, name, fn, doc, __VA_ARGS__);         \
  FC_DEF_HALVES(m, name, fn, doc, __VA_ARGS__)

void bind_gemm(py::module_& m);
void bind_im2col(py::module_& m);
void bind_conv(py::module_& m);
void bind_zeropad(py::module_& m);
void bind_affine(py::module_& m);
void bind_pool(py::module_& m);
void bind_activation(py::module_& m);
void bind_loss(py::module_& m);
void bind_dropout(py::module_& m);
void bind_batchnorm(py::module_& m);
void bind_spatial_batchnorm(py::module_& m);
void bind_global_pool(py::module_& m);
void bind_upsample(py::module_& m);

}  // namespace fastconv::bind
