// bindings/activation.cpp: the activation bindings of fastconv._cpu (bindings/activation.h) on the cpu:: kernels.
#include "bindings/activation.h"

#include "cpu/activation.h"

namespace fastconv::bind {

void bind_activation(py::module_& m) { FC_BIND_ACTIVATION(m, CpuBackend, cpu); }

}  // namespace fastconv::bind
