// backend.h: the two kinds of array a binding body serves, so that each op's checks are written once for the CPU
// module (NumPy arrays, bind_util.h) and the CUDA module (objects with __cuda_array_interface__, cuda_array.h).
// A binding body is a template over the backend B:
//   const i64 n = B::dim(x, "x", 1, 0);          extents, with the argument's name in the message
//   const T* xp = B::template in<T>(x, "x", {n}); checked input pointer (dtype, shape, contiguity, device)
//   T* op = B::template out<T>(out, "out", {n});  checked output pointer (also writeable)
//   typename B::Launch go;                         then the kernel: the GIL released (and, for CUDA, the kernels
//                                                  of this thread launched on CuPy's current stream)
// The kernels of both backends have the same names and signatures (cpu:: and cuda::), so a registration macro
// instantiates one body with either namespace.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "bindings/bind_util.h"

namespace fastconv::bind {

struct CpuBackend {
  using Array = py::array;
  using Launch = py::gil_scoped_release;

  static std::int64_t dim(const Array& a, const char* name, int ndim, int i) { return bind::dim(a, name, ndim, i); }
  template <typename T>
  static const T* in(const Array& a, const char* name, std::initializer_list<std::int64_t> shape) {
    return in_ptr<T>(a, name, shape);
  }
  template <typename T>
  static T* out(Array& a, const char* name, std::initializer_list<std::int64_t> shape) {
    return out_ptr<T>(a, name, shape);
  }
};

}  // namespace fastconv::bind
