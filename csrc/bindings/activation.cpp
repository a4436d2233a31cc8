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

// Every activation binding has one of two shapes: forward (x -> out) and backward (dout, out -> dx), all
// 1-D of the length of the first array; only the kernel differs.
template <typename T, void (*kernel)(const T*, T*, i64)>
void forward_py(py::array x, py::array out) {
  const i64 n = dim(x, "x", 1, 0);
  const T* xp = in_ptr<T>(x, "x", {n});
  T* op = out_ptr<T>(out, "out", {n});
  py::gil_scoped_release release;
  kernel(xp, op, n);
}

template <typename T, void (*kernel)(const T*, const T*, T*, i64)>
void backward_py(py::array dout, py::array out, py::array dx) {
  const i64 n = dim(dout, "dout", 1, 0);
  const T* dp = in_ptr<T>(dout, "dout", {n});
  const T* op = in_ptr<T>(out, "out", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  kernel(dp, op, dxp, n);
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

}  // namespace

void bind_activation(py::module_& m) {
  FC_DEF_FLOATS_PTR(m, "relu_forward", (&forward_py<T_, cpu::relu_forward<T_>>),
                    "ReLU: out = (x <= 0) ? 0 : x on 1-D arrays of length n. Overwrites out.", py::arg("x"),
                    py::arg("out"));
  FC_DEF_FLOATS_PTR(m, "relu_backward", (&backward_py<T_, cpu::relu_backward<T_>>),
                    "ReLU backward: dx = (out <= 0) ? 0 : dout, out being the forward output. Overwrites dx.",
                    py::arg("dout"), py::arg("out"), py::arg("dx"));
  FC_DEF_FLOATS_PTR(m, "sigmoid_forward", (&forward_py<T_, cpu::sigmoid_forward<T_>>),
                    "Sigmoid, overflow-free piecewise form: out = 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) "
                    "below. Overwrites out.",
                    py::arg("x"), py::arg("out"));
  FC_DEF_FLOATS_PTR(m, "sigmoid_backward", (&backward_py<T_, cpu::sigmoid_backward<T_>>),
                    "Sigmoid backward: dx = (dout * (1 - out)) * out. Overwrites dx.", py::arg("dout"),
                    py::arg("out"), py::arg("dx"));
  FC_DEF_FLOATS(m, "leaky_relu_forward", leaky_relu_forward_py,
                "Leaky ReLU: out = (x <= 0) ? alpha * x : x, alpha >= 0. Overwrites out.", py::arg("x"),
                py::arg("out"), py::arg("alpha"));
  FC_DEF_FLOATS(m, "leaky_relu_backward", leaky_relu_backward_py,
                "Leaky ReLU backward: dx = (out <= 0) ? alpha * dout : dout, out being the forward output. "
                "Overwrites dx.",
                py::arg("dout"), py::arg("out"), py::arg("dx"), py::arg("alpha"));
  FC_DEF_FLOATS_PTR(m, "tanh_forward", (&forward_py<T_, cpu::tanh_forward<T_>>), "out = tanh(x). Overwrites out.",
                    py::arg("x"), py::arg("out"));
  FC_DEF_FLOATS_PTR(m, "tanh_backward", (&backward_py<T_, cpu::tanh_backward<T_>>),
                    "Tanh backward: dx = dout * (1 - out * out), out being the forward output. Overwrites dx.",
                    py::arg("dout"), py::arg("out"), py::arg("dx"));
}

}  // namespace fastconv::bind
