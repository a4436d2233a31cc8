// bindings/time_loss.cpp: time_softmax_ce_forward / time_softmax_ce_backward (x, y, dx (M, V), t int64 (M,)).
// Every label is checked to be in [0, V) or equal to ignore_label before a kernel reads through it.
#include <string>
#include <utility>

#include "bindings/bind_util.h"
#include "cpu/time_loss.h"

namespace fastconv::bind {
namespace {

const std::int64_t* time_labels_ptr(const py::array& t, std::int64_t M, std::int64_t V, std::int64_t ignore) {
  const std::int64_t* p = in_ptr<std::int64_t>(t, "ts", {M});
  const std::int64_t bad = cpu::first_bad_time_label(p, M, V, ignore);
  if (bad >= 0)
    throw py::value_error("ts: label " + std::to_string(p[bad]) + " at index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(V) + ") and not the ignore label " +
                          std::to_string(ignore));
  return p;
}

template <typename T>
std::pair<double, std::int64_t> time_softmax_ce_forward_py(py::array x, py::array t, py::array y,
                                                           std::int64_t ignore_label) {
  const std::int64_t M = dim(x, "xs", 2, 0), V = dim(x, "xs", 2, 1);
  const T* px = in_ptr<T>(x, "xs", {M, V});
  const std::int64_t* pt = time_labels_ptr(t, M, V, ignore_label);
  T* py_ = out_ptr<T>(y, "y", {M, V});
  std::int64_t kept = 0;
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = cpu::time_softmax_ce_forward<T>(px, pt, py_, M, V, ignore_label, &kept);
  }
  return {loss, kept};
}

template <typename T>
void time_softmax_ce_backward_py(py::array y, py::array t, py::array dx, std::int64_t ignore_label,
                                 double scale) {
  const std::int64_t M = dim(y, "y", 2, 0), V = dim(y, "y", 2, 1);
  const T* py_ = in_ptr<T>(y, "y", {M, V});
  const std::int64_t* pt = time_labels_ptr(t, M, V, ignore_label);
  T* pdx = out_ptr<T>(dx, "dx", {M, V});
  py::gil_scoped_release nogil;
  cpu::time_softmax_ce_backward<T>(py_, pt, pdx, M, V, ignore_label, scale);
}

}  // namespace

void bind_time_loss(py::module_& m) {
  FC_DEF_ALL(m, "time_softmax_ce_forward", time_softmax_ce_forward_py,
             "y = softmax(xs); returns (sum of -log y[t] over kept rows, number of kept rows).",
             py::arg("xs"), py::arg("ts"), py::arg("y"), py::arg("ignore_label"));
  FC_DEF_ALL(m, "time_softmax_ce_backward", time_softmax_ce_backward_py,
             "dx = (y - onehot(t)) * scale on kept rows, 0 on ignored rows.", py::arg("y"), py::arg("ts"),
             py::arg("dx"), py::arg("ignore_label"), py::arg("scale"));
}

}  // namespace fastconv::bind
