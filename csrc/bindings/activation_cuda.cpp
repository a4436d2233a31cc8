// bindings/activation_cuda.cpp: the activation bindings of fastconv._cuda (bindings/activation.h) on the cuda::
// kernels, taking CUDA arrays (CuPy's, or any __cuda_array_interface__ object).
#include "bindings/activation.h"
#include "bindings/cuda_backend.h"

namespace fastconv::bind {

void bind_activation_cuda(py::module_& m) { FC_BIND_ACTIVATION(m, CudaBackend, cuda); }

}  // namespace fastconv::bind
