// bindings/loss.cpp: softmax_forward, softmax_ce_{forward,backward}_{labels,dense}, each _f32 / _f64.
// x, y, dx are (N, K) with N, K >= 1; labels t are int64 (N,) and every label is checked to be in [0, K);
// dense t is (N, K) of the same dtype as x. sigmoid_bce_{forward,backward} and mse_{forward,backward} take
// ravelled 1-D arrays of one length n >= 1.
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "common/check.h"
#include "cpu/loss.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

const std::int64_t* labels_ptr(const py::array& t, i64 N, i64 K) {
  const std::int64_t* tp = in_ptr<std::int64_t>(t, "t", {N});
  const i64 bad = cpu::first_bad_label(tp, N, K);
  if (bad >= 0)
    throw py::value_error("t: label " + std::to_string(tp[bad]) + " at index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(K) + ")");
  return tp;
}

template <typename T>
void softmax_forward_py(py::array x, py::array y) {
  const auto [N, K] = matrix_dims(x, "x", "K");
  const T* xp = in_ptr<T>(x, "x", {N, K});
  T* yp = out_ptr<T>(y, "y", {N, K});
  py::gil_scoped_release release;
  cpu::softmax_forward<T>(xp, yp, N, K);
}

template <typename T>
double softmax_ce_forward_labels_py(py::array x, py::array t, py::array y) {
  const auto [N, K] = matrix_dims(x, "x", "K");
  const T* xp = in_ptr<T>(x, "x", {N, K});
  const std::int64_t* tp = labels_ptr(t, N, K);
  T* yp = out_ptr<T>(y, "y", {N, K});
  py::gil_scoped_release release;
  return cpu::softmax_ce_forward_labels<T>(xp, tp, yp, N, K);
}

template <typename T>
double softmax_ce_forward_dense_py(py::array x, py::array t, py::array y) {
  const auto [N, K] = matrix_dims(x, "x", "K");
  const T* xp = in_ptr<T>(x, "x", {N, K});
  const T* tp = in_ptr<T>(t, "t", {N, K});
  T* yp = out_ptr<T>(y, "y", {N, K});
  py::gil_scoped_release release;
  return cpu::softmax_ce_forward_dense<T>(xp, tp, yp, N, K);
}

template <typename T>
void softmax_ce_backward_labels_py(py::array y, py::array t, py::array dx, double dout) {
  const auto [N, K] = matrix_dims(y, "y", "K");
  const T* yp = in_ptr<T>(y, "y", {N, K});
  const std::int64_t* tp = labels_ptr(t, N, K);
  T* dxp = out_ptr<T>(dx, "dx", {N, K});
  py::gil_scoped_release release;
  cpu::softmax_ce_backward_labels<T>(yp, tp, dxp, N, K, dout);
}

template <typename T>
void softmax_ce_backward_dense_py(py::array y, py::array t, py::array dx, double dout) {
  const auto [N, K] = matrix_dims(y, "y", "K");
  const T* yp = in_ptr<T>(y, "y", {N, K});
  const T* tp = in_ptr<T>(t, "t", {N, K});
  T* dxp = out_ptr<T>(dx, "dx", {N, K});
  py::gil_scoped_release release;
  cpu::softmax_ce_backward_dense<T>(yp, tp, dxp, N, K, dout);
}

i64 flat_len(const py::array& a, const char* name) {
  const i64 n = dim(a, name, 1, 0);
  if (n < 1) throw py::value_error(std::string(name) + ": empty array, expected at least one value");
  return n;
}

template <typename T>
double sigmoid_bce_forward_py(py::array x, py::array t, py::array y) {
  const i64 n = flat_len(x, "x");
  const T* xp = in_ptr<T>(x, "x", {n});
  const T* tp = in_ptr<T>(t, "t", {n});
  T* yp = out_ptr<T>(y, "y", {n});
  py::gil_scoped_release release;
  return cpu::sigmoid_bce_forward<T>(xp, tp, yp, n);
}

template <typename T>
void sigmoid_bce_backward_py(py::array y, py::array t, py::array dx, double dout) {
  const i64 n = flat_len(y, "y");
  const T* yp = in_ptr<T>(y, "y", {n});
  const T* tp = in_ptr<T>(t, "t", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::sigmoid_bce_backward<T>(yp, tp, dxp, n, dout);
}

template <typename T>
double mse_forward_py(py::array y, py::array t) {
  const i64 n = flat_len(y, "y");
  const T* yp = in_ptr<T>(y, "y", {n});
  const T* tp = in_ptr<T>(t, "t", {n});
  py::gil_scoped_release release;
  return cpu::mse_forward<T>(yp, tp, n);
}

template <typename T>
void mse_backward_py(py::array y, py::array t, py::array dx, double dout) {
  const i64 n = flat_len(y, "y");
  const T* yp = in_ptr<T>(y, "y", {n});
  const T* tp = in_ptr<T>(t, "t", {n});
  T* dxp = out_ptr<T>(dx, "dx", {n});
  py::gil_scoped_release release;
  cpu::mse_backward<T>(yp, tp, dxp, n, dout);
}

}  // namespace

void bind_loss(py::module_& m) {
  FC_DEF_FLOATS(m, "softmax_forward", softmax_forward_py,
                "Row softmax of x (N, K): y = exp(x - rowmax) / rowsum. Overwrites y.", py::arg("x"), py::arg("y"));
  FC_DEF_FLOATS(m, "softmax_ce_forward_labels", softmax_ce_forward_labels_py,
                "y = softmax(x) for x (N, K) and int64 labels t (N,) in [0, K); returns the cross-entropy "
                "-(sum_n log(y[n, t[n]] + 1e-7)) / N as a float (double accumulation).",
                py::arg("x"), py::arg("t"), py::arg("y"));
  FC_DEF_FLOATS(m, "softmax_ce_forward_dense", softmax_ce_forward_dense_py,
                "y = softmax(x) for x (N, K) and dense targets t (N, K); returns "
                "-(sum_n sum_k t[n, k] * log(y[n, k] + 1e-7)) / N as a float (double accumulation).",
                py::arg("x"), py::arg("t"), py::arg("y"));
  FC_DEF_FLOATS(m, "softmax_ce_backward_labels", softmax_ce_backward_labels_py,
                "dx = ((y - onehot(t)) / N) * dout for y (N, K) and int64 labels t (N,). Overwrites dx.",
                py::arg("y"), py::arg("t"), py::arg("dx"), py::arg("dout"));
  FC_DEF_FLOATS(m, "softmax_ce_backward_dense", softmax_ce_backward_dense_py,
                "dx = ((y - t) / N) * dout for y and dense targets t, both (N, K). Overwrites dx.", py::arg("y"),
                py::arg("t"), py::arg("dx"), py::arg("dout"));
  FC_DEF_HALVES(m, "softmax_forward", softmax_forward_py, "softmax_forward for float16 / bfloat16.", py::arg("x"),
                py::arg("y"));
  FC_DEF_HALVES(m, "softmax_ce_forward_labels", softmax_ce_forward_labels_py,
                "softmax_ce_forward_labels for float16 / bfloat16 (float32 softmax, double loss).", py::arg("x"),
                py::arg("t"), py::arg("y"));
  FC_DEF_HALVES(m, "softmax_ce_forward_dense", softmax_ce_forward_dense_py,
                "softmax_ce_forward_dense for float16 / bfloat16.", py::arg("x"), py::arg("t"), py::arg("y"));
  FC_DEF_HALVES(m, "softmax_ce_backward_labels", softmax_ce_backward_labels_py,
                "softmax_ce_backward_labels for float16 / bfloat16.", py::arg("y"), py::arg("t"), py::arg("dx"),
                py::arg("dout"));
  FC_DEF_HALVES(m, "softmax_ce_backward_dense", softmax_ce_backward_dense_py,
                "softmax_ce_backward_dense for float16 / bfloat16.", py::arg("y"), py::arg("t"), py::arg("dx"),
                py::arg("dout"));
  FC_DEF_ALL(m, "sigmoid_bce_forward", sigmoid_bce_forward_py,
             "y = sigmoid(x) for logits x and targets t (1-D, length n); returns the mean over the n "
             "values of max(x, 0) - x*t + log(1 + exp(-|x|)) (binary cross-entropy, double accumulation).",
             py::arg("x"), py::arg("t"), py::arg("y"));
  FC_DEF_ALL(m, "sigmoid_bce_backward", sigmoid_bce_backward_py,
             "dx = (y - t) * (dout / n) for y = sigmoid(x) and t (1-D, length n). Overwrites dx.",
             py::arg("y"), py::arg("t"), py::arg("dx"), py::arg("dout"));
  FC_DEF_ALL(m, "mse_forward", mse_forward_py,
             "Returns mean((y - t)^2) over the n values of y and t (1-D; double accumulation).",
             py::arg("y"), py::arg("t"));
  FC_DEF_ALL(m, "mse_backward", mse_backward_py,
             "dx = (y - t) * (2 * dout / n) for y and t (1-D, length n). Overwrites dx.", py::arg("y"),
             py::arg("t"), py::arg("dx"), py::arg("dout"));
}

}  // namespace fastconv::bind
