// bindings/activation.cpp: relu_{forward,backward}_{f32,f64}, sigmoid_{forward,backward}_{f32,f64},
// leaky_relu_{forward,backward}_{f32,f64} and tanh_{forward,backward}_{f32,f64} on contiguous 1-D arrays of
// equal length (ops.py passes ravelled views).
#include <cmath>
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "cpu/activation.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

template <typename T>
void relu_forward_py(py::array x, py::array out) {
  const i64 n = dim(x, "x", 1, 0);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  py::gil_scoped_release release;
  cpu::relu_forward<T>(xp, op, n);
}

template <typename T>
void relu_backward_py(py::array dout, py::array out, py::array dx) {
  const i64 n = dim(dout, "dout", 1, 0);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const T* op = in_ptr<T>(out, "out", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::relu_backward<T>(dp, op, dxp, n);
}

template <typename T>
void sigmoid_forward_py(py::array x, py::array out) {
  const i64 n = dim(x, "x", 1, 0);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  py::gil_scoped_release release;
  cpu::sigmoid_forward<T>(xp, op, n);
}

template <typename T>
void sigmoid_backward_py(py::array dout, py::array out, py::array dx) {
  const i64 n = dim(dout, "dout", 1, 0);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const T* op = in_ptr<T>(out, "out", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::sigmoid_backward<T>(dp, op, dxp, n);
}

void check_alpha(double alpha) {
  if (!(alpha >= 0.0) || !std::isfinite(alpha))
    throw py::value_error("alpha must be a finite number >= 0, got " +
                          std::string(py::str(py::float_(alpha))));
}

template <typename T>
void leaky_relu_forward_py(py::array x, py::array out, double alpha) {
  const i64 n = dim(x, "x", 1, 0);
  check_alpha(alpha);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  py::gil_scoped_release release;
  cpu::leaky_relu_forward<T>(xp, op, n, alpha);
}

template <typename T>
void leaky_relu_backward_py(py::array dout, py::array out, py::array dx, double alpha) {
  const i64 n = dim(dout, "dout", 1, 0);
  check_alpha(alpha);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const T* op = in_ptr<T>(out, "out", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::leaky_relu_backward<T>(dp, op, dxp, n, alpha);
}

template <typename T>
void tanh_forward_py(py::array x, py::array out) {
  const i64 n = dim(x, "x", 1, 0);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  py::gil_scoped_release release;
  cpu::tanh_forward<T>(xp, op, n);
}

template <typename T>
void tanh_backward_py(py::array dout, py::array out, py::array dx) {
  const i64 n = dim(dout, "dout", 1, 0);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const T* op = in_ptr<T>(out, "out", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::tanh_backward<T>(dp, op, dxp, n);
}

}  // namespace

void bind_activation(py::module_& m) {
  FC_DEF_FLOATS(m, "relu_forward", relu_forward_py,
                "ReLU: out = (x <= 0) ? 0 : x on 1-D arrays of length n. Overwrites out.", py::arg("x"),
                py::arg("out"));
  FC_DEF_FLOATS(m, "relu_backward", relu_backward_py,
                "ReLU backward: dx = (out <= 0) ? 0 : dout, out being the forward output. Overwrites dx.",
                py::arg("dout"), py::arg("out"), py::arg("dx"));
  FC_DEF_FLOATS(m, "sigmoid_forward", sigmoid_forward_py,
                "Sigmoid, overflow-free piecewise form: out = 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) "
                "below. Overwrites out.",
                py::arg("x"), py::arg("out"));
  FC_DEF_FLOATS(m, "sigmoid_backward", sigmoid_backward_py,
                "Sigmoid backward: dx = (dout * (1 - out)) * out. Overwrites dx.", py::arg("dout"),
                py::arg("out"), py::arg("dx"));
  FC_DEF_FLOATS(m, "leaky_relu_forward", leaky_relu_forward_py,
                "Leaky ReLU: out = (x <= 0) ? alpha * x : x, alpha >= 0. Overwrites out.", py::arg("x"),
                py::arg("out"), py::arg("alpha"));
  FC_DEF_FLOATS(m, "leaky_relu_backward", leaky_relu_backward_py,
                "Leaky ReLU backward: dx = (out <= 0) ? alpha * dout : dout, out being the forward output. "
                "Overwrites dx.",
                py::arg("dout"), py::arg("out"), py::arg("dx"), py::arg("alpha"));
  FC_DEF_FLOATS(m, "tanh_forward", tanh_forward_py, "out = tanh(x). Overwrites out.", py::arg("x"),
                py::arg("out"));
  FC_DEF_FLOATS(m, "tanh_backward", tanh_backward_py,
                "Tanh backward: dx = dout * (1 - out * out), out being the forward output. Overwrites dx.",
                py::arg("dout"), py::arg("out"), py::arg("dx"));
}

}  // namespace fastconv::bind
