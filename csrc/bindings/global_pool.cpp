// bindings/global_pool.cpp: global_avgpool_{forward,backward}, global_maxpool_{forward,backward}, each _f32 /
// _f64 / _f16 / _bf16. x and dx are (N, C, H, W) with every dimension >= 1; out, dout and argmax (int64) are
// (N, C).
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "cpu/global_pool.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

template <typename T>
void global_avgpool_forward_py(py::array x, py::array out) {
  const Nchw d = nchw(x, "x");
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  T* op = out_ptr<T>(out, "out", {d.N, d.C});
  py::gil_scoped_release release;
  cpu::global_avgpool_forward<T>(xp, op, d.N * d.C, d.H * d.W);
}

template <typename T>
void global_avgpool_backward_py(py::array dout, py::array dx) {
  const Nchw d = nchw(dx, "dx");
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C});
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  py::gil_scoped_release release;
  cpu::global_avgpool_backward<T>(dp, dxp, d.N * d.C, d.H * d.W);
}

template <typename T>
void global_maxpool_forward_py(py::array x, py::array out, py::array argmax) {
  const Nchw d = nchw(x, "x");
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  T* op = out_ptr<T>(out, "out", {d.N, d.C});
  i64* ap = out_ptr<i64>(argmax, "argmax", {d.N, d.C});
  py::gil_scoped_release release;
  cpu::global_maxpool_forward<T>(xp, op, ap, d.N * d.C, d.H * d.W);
}

template <typename T>
void global_maxpool_backward_py(py::array dout, py::array argmax, py::array dx) {
  const Nchw d = nchw(dx, "dx");
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C});
  const i64* ap = in_ptr<i64>(argmax, "argmax", {d.N, d.C});
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  i64 bad;
  {
    py::gil_scoped_release release;
    bad = cpu::global_maxpool_backward<T>(dp, ap, dxp, d.N * d.C, d.H * d.W);
  }
  if (bad >= 0)
    throw py::value_error("argmax: value " + std::to_string(ap[bad]) + " at flat index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(d.H * d.W) + ")");
}

}  // namespace

void bind_global_pool(py::module_& m) {
  FC_DEF_ALL(m, "global_avgpool_forward", global_avgpool_forward_py,
             "Global average pooling: out (N, C) = mean of each (H, W) plane of x (N, C, H, W).",
             py::arg("x"), py::arg("out"));
  FC_DEF_ALL(m, "global_avgpool_backward", global_avgpool_backward_py,
             "Global average pooling backward: dx[n, c, :, :] = dout[n, c] / (H * W). Overwrites dx.",
             py::arg("dout"), py::arg("dx"));
  FC_DEF_ALL(m, "global_maxpool_forward", global_maxpool_forward_py,
             "Global max pooling: out (N, C) = max of each plane of x (N, C, H, W), argmax (N, C) int64 its "
             "first position h*W + w (the first NaN if any).",
             py::arg("x"), py::arg("out"), py::arg("argmax"));
  FC_DEF_ALL(m, "global_maxpool_backward", global_maxpool_backward_py,
             "Global max pooling backward: dx = 0 except dx[n, c] at argmax[n, c] = dout[n, c]. Raises "
             "ValueError for an argmax outside [0, H*W).",
             py::arg("dout"), py::arg("argmax"), py::arg("dx"));
}

}  // namespace fastconv::bind
