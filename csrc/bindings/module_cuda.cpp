// module_cuda.cpp: fastconv._cuda, built when CMake finds nvcc. Each op registers its CUDA bindings beside its CPU
// ones; this file adds the device queries.
#include <pybind11/pybind11.h>

#include "cuda/kernels.h"

namespace py = pybind11;
using namespace fastconv;

namespace fastconv::bind {
void bind_activation_cuda(py::module_& m);  // bindings/activation_cuda.cpp
}  // namespace fastconv::bind

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastconv CUDA kernels (float32 / float64) on CuPy arrays. Use fastconv.ops, which validates arguments.";
  m.def("device_count", &cuda::device_count, "CUDA devices visible to this process (0 without driver or device).");
  m.def("device_status", [] { return std::string(cuda::device_status()); },
        "Why no CUDA device can be used ('' when one can): no device, driver too old, or the runtime's message.");
  m.def("device_name", [] { return std::string(cuda::device_name()); }, "Name of the current CUDA device.");
  m.def("build_info", [] {
    py::dict d;
    d["version"] = FASTCONV_VERSION;
    d["cuda_runtime"] = FASTCONV_CUDA_RUNTIME;
    d["architectures"] = FASTCONV_CUDA_ARCHS;
    return d;
  }, "Compile-time facts: version, the CUDA toolkit, the GPU architectures compiled for.");

  bind::bind_activation_cuda(m);
}
