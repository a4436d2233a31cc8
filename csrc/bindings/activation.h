// bindings/activation.h: the activation bindings, written once for both modules: relu, sigmoid, leaky_relu and tanh
// _{forward,backward}_{f32,f64} on contiguous 1-D arrays of equal length (ops.py passes ravelled views).
// activation.cpp registers them for fastconv._cpu with the cpu:: kernels, activation_cuda.cpp for fastconv._cuda
// with the cuda:: kernels (backend.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "bindings/backend.h"

namespace fastconv::bind::activation {

using i64 = std::int64_t;

// forward: x -> out; backward: (dout, out) -> dx; all 1-D of the length of the first array.
template <class B, typename T, void (*kernel)(const T*, T*, i64)>
void forward_py(typename B::Array x, typename B::Array out) {
  const i64 n = B::dim(x, "x", 1, 0);
  const T* xp = B::template in<T>(x, "x", {n});
  T* op = B::template out<T>(out, "out", {n});
  typename B::Launch go;
  kernel(xp, op, n);
}

template <class B, typename T, void (*kernel)(const T*, const T*, T*, i64)>
void backward_py(typename B::Array dout, typename B::Array out, typename B::Array dx) {
  const i64 n = B::dim(dout, "dout", 1, 0);
  const T* dp = B::template in<T>(dout, "dout", {n});
  const T* op = B::template in<T>(out, "out", {n});
  T* dxp = B::template out<T>(dx, "dx", {n});
  typename B::Launch go;
  kernel(dp, op, dxp, n);
}

inline void check_alpha(double alpha) {
  if (!(alpha >= 0.0) || !std::isfinite(alpha))
    throw py::value_error("alpha must be a finite number >= 0, got " + std::string(py::str(py::float_(alpha))));
}

template <class B, typename T, void (*kernel)(const T*, T*, i64, double)>
void leaky_forward_py(typename B::Array x, typename B::Array out, double alpha) {
  const i64 n = B::dim(x, "x", 1, 0);
  check_alpha(alpha);
  const T* xp = B::template in<T>(x, "x", {n});
  T* op = B::template out<T>(out, "out", {n});
  typename B::Launch go;
  kernel(xp, op, n, alpha);
}

template <class B, typename T, void (*kernel)(const T*, const T*, T*, i64, double)>
void leaky_backward_py(typename B::Array dout, typename B::Array out, typename B::Array dx, double alpha) {
  const i64 n = B::dim(dout, "dout", 1, 0);
  check_alpha(alpha);
  const T* dp = B::template in<T>(dout, "dout", {n});
  const T* op = B::template in<T>(out, "out", {n});
  T* dxp = B::template out<T>(dx, "dx", {n});
  typename B::Launch go;
  kernel(dp, op, dxp, n, alpha);
}

}  // namespace fastconv::bind::activation

// Registers every activation binding in module m for backend B with the kernels of namespace fastconv::NS.
#define FC_BIND_ACTIVATION(m, B, NS) FC_BIND_ACTIVATION_DEFS(m, B, NS, FC_DEF_FLOATS_PTR)
// The same for the dtypes a registration macro DEF iterates over (FC_DEF_HALVES_PTR: f16, bf16 on the CPU).
#define FC_BIND_ACTIVATION_DEFS(m, B, NS, DEF)                                                                       \
  do {                                                                                                               \
    using namespace ::fastconv::bind::activation;                                                                   \
    DEF(m, "relu_forward", (&forward_py<B, T_, ::fastconv::NS::relu_forward<T_>>),                   \
                      "ReLU: out = (x <= 0) ? 0 : x on 1-D arrays of length n. Overwrites out.", py::arg("x"),       \
                      py::arg("out"));                                                                               \
    DEF(m, "relu_backward", (&backward_py<B, T_, ::fastconv::NS::relu_backward<T_>>),                \
                      "ReLU backward: dx = (out <= 0) ? 0 : dout, out being the forward output. Overwrites dx.",     \
                      py::arg("dout"), py::arg("out"), py::arg("dx"));                                               \
    DEF(m, "sigmoid_forward", (&forward_py<B, T_, ::fastconv::NS::sigmoid_forward<T_>>),             \
                      "Sigmoid, overflow-free piecewise form: out = 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) "   \
                      "below. Overwrites out.",                                                                      \
                      py::arg("x"), py::arg("out"));                                                                 \
    DEF(m, "sigmoid_backward", (&backward_py<B, T_, ::fastconv::NS::sigmoid_backward<T_>>),          \
                      "Sigmoid backward: dx = (dout * (1 - out)) * out. Overwrites dx.", py::arg("dout"),           \
                      py::arg("out"), py::arg("dx"));                                                                \
    DEF(m, "leaky_relu_forward", (&leaky_forward_py<B, T_, ::fastconv::NS::leaky_relu_forward<T_>>), \
                      "Leaky ReLU: out = (x <= 0) ? alpha * x : x, alpha >= 0. Overwrites out.", py::arg("x"),       \
                      py::arg("out"), py::arg("alpha"));                                                             \
    DEF(m, "leaky_relu_backward",                                                                      \
                      (&leaky_backward_py<B, T_, ::fastconv::NS::leaky_relu_backward<T_>>),                         \
                      "Leaky ReLU backward: dx = (out <= 0) ? alpha * dout : dout, out being the forward output. "  \
                      "Overwrites dx.",                                                                              \
                      py::arg("dout"), py::arg("out"), py::arg("dx"), py::arg("alpha"));                             \
    DEF(m, "tanh_forward", (&forward_py<B, T_, ::fastconv::NS::tanh_forward<T_>>),                   \
                      "out = tanh(x). Overwrites out.", py::arg("x"), py::arg("out"));                               \
    DEF(m, "tanh_backward", (&backward_py<B, T_, ::fastconv::NS::tanh_backward<T_>>),                \
                      "Tanh backward: dx = dout * (1 - out * out), out being the forward output. Overwrites dx.",    \
                      py::arg("dout"), py::arg("out"), py::arg("dx"));                                               \
  } while (0)
