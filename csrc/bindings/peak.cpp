// bindings/peak.cpp: fma_peak(dtype="float32", threads=1, isa=None, seconds=0.2) -> GFLOP/s.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "cpu/isa.h"
#include "cpu/peak.h"

namespace fastconv::bind {
namespace py = pybind11;

void bind_peak(py::module_& m) {
  m.def(
      "fma_peak",
      [](const std::string& dtype, int threads, std::optional<std::string> isa, double seconds) {
        const std::string use = isa ? *isa : std::string(cpu::active_isa_name());
        py::gil_scoped_release nogil;
        return cpu::fma_peak(dtype, threads, use, seconds);
      },
      "Measured multiply-add peak in GFLOP/s (2 flops per FMA lane) of `threads` threads, each running its own "
      "independent FMA chains, for dtype 'float32' or 'float64' and isa 'avx512' | 'avx2' | 'scalar' (None: the "
      "GEMM's ISA in use). Best of repeated 2 ms runs over about `seconds` seconds. Raises ValueError on bad arguments.",
      py::arg("dtype") = "float32", py::arg("threads") = 1, py::arg("isa") = py::none(), py::arg("seconds") = 0.2);
}

}  // namespace fastconv::bind
