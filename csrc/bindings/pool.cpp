// bindings/pool.cpp: maxpool_{forward,backward}_{f32,f64}, avgpool_{forward,backward}_{f32,f64}.
// stride is (sh, sw), pad (top, bottom, left, right). Checks the window geometry (common/geom.h), every
// array's dtype / shape / layout and (backward) every argmax value.
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "common/geom.h"
#include "cpu/pool.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

// The geometry of a pooling over `a` (x forward, dx backward): its 4-D extents and the one window check.
using Pair = std::array<i64, 2>;
using Quad = std::array<i64, 4>;

ConvGeom pool_geom(const py::array& a, const char* name, i64 pool_h, i64 pool_w, Pair stride, Quad pad) {
  return check_geom(WindowKind::pool, name, dim(a, name, 4, 0), dim(a, name, 4, 1), dim(a, name, 4, 2),
                    dim(a, name, 4, 3), WindowArgs{pool_h, pool_w, stride, pad, {1, 1}});
}

template <typename T>
void maxpool_forward_py(py::array x, py::array out, py::object argmax, i64 pool_h, i64 pool_w, Pair stride,
                        Quad pad) {
  const ConvGeom g = pool_geom(x, "x", pool_h, pool_w, stride, pad);
  const T* xp = in_ptr<T>(x, "x", {g.N, g.C, g.H, g.W});
  T* op = out_ptr<T>(out, "out", {g.N, g.C, g.OH, g.OW});
  std::int32_t* ap = optional_out<std::int32_t>(argmax, "argmax", {g.N, g.C, g.OH, g.OW});
  py::gil_scoped_release release;
  cpu::maxpool_forward<T>(xp, op, ap, g);
}

template <typename T>
void maxpool_backward_py(py::array dout, py::array argmax, py::array dx, i64 pool_h, i64 pool_w, Pair stride,
                         Quad pad) {
  const ConvGeom g = pool_geom(dx, "dx", pool_h, pool_w, stride, pad);
  T* dxp = out_ptr<T>(dx, "dx", {g.N, g.C, g.H, g.W});
  const T* dp = in_ptr<T>(dout, "dout", {g.N, g.C, g.OH, g.OW});
  const std::int32_t* ap = in_ptr<std::int32_t>(argmax, "argmax", {g.N, g.C, g.OH, g.OW});
  i64 bad = -1;
  {
    py::gil_scoped_release release;
    bad = cpu::maxpool_backward<T>(dp, ap, dxp, g);
  }
  if (bad >= 0)
    throw py::value_error("argmax: value " + std::to_string(ap[bad]) + " at flat index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(g.plane()) + ")");
}

template <typename T>
void avgpool_forward_py(py::array x, py::array out, i64 pool_h, i64 pool_w, Pair stride, Quad pad) {
  const ConvGeom g = pool_geom(x, "x", pool_h, pool_w, stride, pad);
  const T* xp = in_ptr<T>(x, "x", {g.N, g.C, g.H, g.W});
  T* op = out_ptr<T>(out, "out", {g.N, g.C, g.OH, g.OW});
  py::gil_scoped_release release;
  cpu::avgpool_forward<T>(xp, op, g);
}

template <typename T>
void avgpool_backward_py(py::array dout, py::array dx, i64 pool_h, i64 pool_w, Pair stride, Quad pad) {
  const ConvGeom g = pool_geom(dx, "dx", pool_h, pool_w, stride, pad);
  T* dxp = out_ptr<T>(dx, "dx", {g.N, g.C, g.H, g.W});
  const T* dp = in_ptr<T>(dout, "dout", {g.N, g.C, g.OH, g.OW});
  py::gil_scoped_release release;
  cpu::avgpool_backward<T>(dp, dxp, g);
}

}  // namespace

void bind_pool(py::module_& m) {
  FC_DEF_FLOATS(m, "maxpool_forward", maxpool_forward_py,
                "Max pooling: x (N, C, H, W) -> out (N, C, OH, OW) and int32 argmax (ih*W + iw in the plane), "
                "padding never wins, ties to the first, NaN propagates. Overwrites out and argmax (None: no "
                "argmax, for inference).",
                py::arg("x"), py::arg("out"), py::arg("argmax"), py::arg("pool_h"), py::arg("pool_w"),
                py::arg("stride"), py::arg("pad"));
  FC_DEF_FLOATS(m, "maxpool_backward", maxpool_backward_py,
                "Max pooling backward: dx (N, C, H, W) = 0, then dx[plane][argmax] += dout. Raises ValueError "
                "for an argmax value outside [0, H*W).",
                py::arg("dout"), py::arg("argmax"), py::arg("dx"), py::arg("pool_h"), py::arg("pool_w"),
                py::arg("stride"), py::arg("pad"));
  FC_DEF_FLOATS(m, "avgpool_forward", avgpool_forward_py,
                "Average pooling: x (N, C, H, W) -> out (N, C, OH, OW), window sum / (pool_h*pool_w) with "
                "padding counted as zeros. Overwrites out.",
                py::arg("x"), py::arg("out"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_FLOATS(m, "avgpool_backward", avgpool_backward_py,
                "Average pooling backward: dx (N, C, H, W) overwritten; each real window position gets "
                "dout / (pool_h*pool_w).",
                py::arg("dout"), py::arg("dx"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_HALVES(m, "maxpool_forward", maxpool_forward_py, "maxpool_forward for float16 / bfloat16.", py::arg("x"),
                py::arg("out"), py::arg("argmax"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_HALVES(m, "maxpool_backward", maxpool_backward_py,
                "maxpool_backward for float16 / bfloat16 (float32 sums, one rounding).", py::arg("dout"),
                py::arg("argmax"), py::arg("dx"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_HALVES(m, "avgpool_forward", avgpool_forward_py, "avgpool_forward for float16 / bfloat16.", py::arg("x"),
                py::arg("out"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"), py::arg("pad"));
  FC_DEF_HALVES(m, "avgpool_backward", avgpool_backward_py, "avgpool_backward for float16 / bfloat16.",
                py::arg("dout"), py::arg("dx"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride"),
                py::arg("pad"));
}

}  // namespace fastconv::bind
