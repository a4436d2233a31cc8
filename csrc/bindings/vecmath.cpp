// bindings/vecmath.cpp: vecmath_sigmoid / vecmath_tanh (x, y) and vecmath_softmax (x, y) -> log-sum-exp, the
// float32 rows of cpu/vecmath.h on 1-D arrays, on the ISA in use: exposed so tests measure every variant's
// error against float64 (the recurrent cells and the softmax over time use them inside their kernels).
#include "bindings/bind_util.h"
#include "cpu/vecmath.h"

namespace fastconv::bind {

namespace {

template <bool Tanh>
void rows_py(py::array x, py::array y) {
  const std::int64_t n = dim(x, "x", 1, 0);
  const float* px = in_ptr<float>(x, "x", {n});
  float* py_ = out_ptr<float>(y, "y", {n});
  py::gil_scoped_release nogil;
  const cpu::VecMath& vm = cpu::vecmath();
  (Tanh ? vm.tanh : vm.sigmoid)(px, py_, n);
}

}  // namespace

void bind_vecmath(py::module_& m) {
  m.def("vecmath_sigmoid", &rows_py<false>, "y = 1 / (1 + e^-x), float32 rows (cpu/vecmath.h).",
        py::arg("x"), py::arg("y"));
  m.def("vecmath_tanh", &rows_py<true>, "y = tanh(x), float32 rows (cpu/vecmath.h).", py::arg("x"),
        py::arg("y"));
  m.def("vecmath_softmax", [](py::array x, py::array y) {
    const std::int64_t n = dim(x, "x", 1, 0);
    const float* px = in_ptr<float>(x, "x", {n});
    float* py_ = out_ptr<float>(y, "y", {n});
    py::gil_scoped_release nogil;
    return cpu::vecmath().softmax(px, py_, n);
  }, "y = softmax(x) of one float32 row; returns its log-sum-exp (cpu/vecmath.h).", py::arg("x"), py::arg("y"));
}

}  // namespace fastconv::bind
