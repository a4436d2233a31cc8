// bindings/activation.cpp: the activation bindings of fastconv._cpu (bindings/activation.h) on the cpu:: kernels.
#include "bindings/activation.h"

#include "cpu/activation.h"

namespace fastconv::bind {

void bind_activation(py::module_& m) {
  FC_BIND_ACTIVATION(m, CpuBackend, cpu);
  FC_BIND_ACTIVATION_DEFS(m, CpuBackend, cpu, FC_DEF_HALVES_PTR);
}

}  // namespace fastconv::bind
