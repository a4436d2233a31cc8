// cuda_array.h: the CUDA bindings' view of an array: any object with __cuda_array_interface__ (CuPy's arrays,
// Numba's, PyTorch's CUDA tensors), read without importing the library that made it (pybind11's py::array rejects
// them, pybind11#2694). As bind_util.h does for NumPy arrays, a binding checks every argument before it hands a
// pointer to a kernel: the dtype, every extent, C-contiguity, writeability of outputs, and that the pointer is
// device memory of the current device. Failures raise TypeError / ValueError naming the argument.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/kernels.h"

namespace fastconv::bind {
namespace py = pybind11;

// The interface's typestr of T (little-endian, as on every CUDA host).
template <typename T> struct cai_typestr;
template <> struct cai_typestr<float> { static constexpr const char* value = "<f4"; };
template <> struct cai_typestr<double> { static constexpr const char* value = "<f8"; };
template <> struct cai_typestr<std::int64_t> { static constexpr const char* value = "<i8"; };
template <> struct cai_typestr<std::uint8_t> { static constexpr const char* value = "|u1"; };

struct DeviceArray {
  std::uintptr_t ptr = 0;
  bool readonly = false;
  std::string typestr;
  std::vector<std::int64_t> shape;
  bool c_contiguous = true;
};

// The interface of `obj` (argument `name`), parsed; TypeError when it has none.
DeviceArray device_array(py::handle obj, const char* name);

// Throws ValueError unless `ptr` is device (or managed) memory of the current device; null passes (empty arrays).
void check_device_pointer(std::uintptr_t ptr, const char* name);

inline std::string shape_str(const std::vector<std::int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

template <typename T>
void check_device_array(const DeviceArray& a, const char* name, std::initializer_list<std::int64_t> shape,
                        bool writeable) {
  if (a.typestr != cai_typestr<T>::value)
    throw py::type_error(std::string(name) + ": CUDA array of typestr " + a.typestr + ", expected " +
                         cai_typestr<T>::value);
  const std::vector<std::int64_t> want(shape);
  if (a.shape != want)
    throw py::value_error(std::string(name) + ": shape " + shape_str(a.shape) + ", expected " + shape_str(want));
  if (!a.c_contiguous) throw py::value_error(std::string(name) + ": array must be C-contiguous");
  if (writeable && a.readonly) throw py::value_error(std::string(name) + ": array is read-only");
  check_device_pointer(a.ptr, name);
}

template <typename T>
const T* dev_in(py::handle obj, const char* name, std::initializer_list<std::int64_t> shape) {
  const DeviceArray a = device_array(obj, name);
  check_device_array<T>(a, name, shape, false);
  return reinterpret_cast<const T*>(a.ptr);
}

template <typename T>
T* dev_out(py::handle obj, const char* name, std::initializer_list<std::int64_t> shape) {
  const DeviceArray a = device_array(obj, name);
  check_device_array<T>(a, name, shape, true);
  return reinterpret_cast<T*>(a.ptr);
}

// Extent i of a ndim-D device array (ValueError naming it when the rank differs).
std::int64_t dev_dim(py::handle obj, const char* name, int ndim, int i);

// CuPy's current stream on the current device: every kernel is launched there, so fastconv's work is ordered with
// the user's CuPy work. Called with the GIL held.
cuda::Stream current_stream();

}  // namespace fastconv::bind
