// cuda_backend.h: the CUDA side of backend.h, for the bindings of fastconv._cuda.
#pragma once
#include "bindings/backend.h"
#include "bindings/cuda_array.h"
#include "cuda/kernels.h"

namespace fastconv::bind {

struct CudaBackend {
  using Array = py::object;

  // CuPy's current stream becomes this thread's launch stream (read with the GIL held), then the GIL is released.
  struct Launch {
    cuda::StreamScope stream{current_stream()};
    py::gil_scoped_release release;
  };

  static std::int64_t dim(const Array& a, const char* name, int ndim, int i) { return dev_dim(a, name, ndim, i); }
  template <typename T>
  static const T* in(const Array& a, const char* name, std::initializer_list<std::int64_t> shape) {
    return dev_in<T>(a, name, shape);
  }
  template <typename T>
  static T* out(Array& a, const char* name, std::initializer_list<std::int64_t> shape) {
    return dev_out<T>(a, name, shape);
  }
};

}  // namespace fastconv::bind
