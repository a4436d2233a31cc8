// bindings/dropout.cpp: dropout_{forward,backward}_{f32,f64} on contiguous 1-D arrays; mask is numpy bool.
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "cpu/dropout.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

template <typename T>
void dropout_forward_py(py::array x, py::array out, py::array mask, double ratio, std::uint64_t seed) {
  if (!(ratio >= 0.0 && ratio < 1.0))
    throw py::value_error("ratio must be in [0, 1), got " + std::string(py::str(py::float_(ratio))));
  const i64 n = dim(x, "x", 1, 0);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  auto* mp = reinterpret_cast<std::uint8_t*>(out_ptr<bool>(mask, "mask", {n}));
  py::gil_scoped_release release;
  cpu::dropout_forward<T>(xp, op, mp, n, ratio, seed);
}

template <typename T>
void dropout_backward_py(py::array dout, py::array mask, py::array dx) {
  const i64 n = dim(dout, "dout", 1, 0);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const auto* mp = reinterpret_cast<const std::uint8_t*>(in_ptr<bool>(mask, "mask", {n}));
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::dropout_backward<T>(dp, mp, dxp, n);
}

}  // namespace

void bind_dropout(py::module_& m) {
  FC_DEF_FLOATS(m, "dropout_forward", dropout_forward_py,
                "Dropout: mask[i] = u(seed, i) > ratio (counter-based uniform in [0, 1), independent of the "
                "thread count), out = x * mask. ratio in [0, 1), seed a uint64. Overwrites out and mask (bool).",
                py::arg("x"), py::arg("out"), py::arg("mask"), py::arg("ratio"), py::arg("seed"));
  FC_DEF_FLOATS(m, "dropout_backward", dropout_backward_py, "Dropout backward: dx = dout * mask. Overwrites dx.",
                py::arg("dout"), py::arg("mask"), py::arg("dx"));
  FC_DEF_HALVES(m, "dropout_forward", dropout_forward_py, "dropout_forward for float16 / bfloat16 (same mask).",
                py::arg("x"), py::arg("out"), py::arg("mask"), py::arg("ratio"), py::arg("seed"));
  FC_DEF_HALVES(m, "dropout_backward", dropout_backward_py, "dropout_backward for float16 / bfloat16.",
                py::arg("dout"), py::arg("mask"), py::arg("dx"));
}

}  // namespace fastconv::bind
