// bindings/pool.cpp: maxpool_{forward,backward}_{f32,f64}, avgpool_{forward,backward}_{f32,f64}.
// Checks the window geometry, every array's dtype / shape / layout and (backward) every argmax value.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "bindings/bind_util.h"
#include "common/check.h"
#include "common/shapes.h"
#include "cpu/pool.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

struct PoolDims {
  i64 N, C, H, W, OH, OW;
};

PoolDims pool_dims(const py::array& a, const char* name, i64 pool_h, i64 pool_w, i64 stride, i64 pad) {
  PoolDims d{};
  d.N = dim(a, name, 4, 0);
  d.C = dim(a, name, 4, 1);
  d.H = dim(a, name, 4, 2);
  d.W = dim(a, name, 4, 3);
  check_positive(pool_h, "pool_h");
  check_positive(pool_w, "pool_w");
  check_positive(stride, "stride");
  check_nonneg(pad, "pad");
  if (pad >= pool_h || pad >= pool_w)
    throw py::value_error("pad must be < pool_h and < pool_w, got pad=" + std::to_string(pad) +
                          ", pool_h=" + std::to_string(pool_h) + ", pool_w=" + std::to_string(pool_w));
  checked_size(name, d.N, d.C, d.H, d.W);
  if (checked_size(name, d.H, d.W) >= (i64(1) << 31))
    throw py::value_error(std::string(name) + ": shape " + shape_str(a) +
                          " has H*W >= 2^31, which an int32 argmax cannot index");
  if (pad > (std::numeric_limits<i64>::max() - std::max(d.H, d.W)) / 2)
    throw py::value_error("pad is too large: " + std::to_string(pad));
  checked_size("pool_h * pool_w", pool_h, pool_w);
  if (d.H + 2 * pad < pool_h || d.W + 2 * pad < pool_w)
    throw py::value_error(std::string(name) + ": shape " + shape_str(a) + " with pad=" + std::to_string(pad) +
                          " is smaller than the window (" + std::to_string(pool_h) + ", " +
                          std::to_string(pool_w) + ")");
  d.OH = conv_out_size(d.H, pool_h, stride, pad);
  d.OW = conv_out_size(d.W, pool_w, stride, pad);
  checked_size("output", d.N, d.C, d.OH, d.OW);
  return d;
}

template <typename T>
void maxpool_forward_py(py::array x, py::array out, py::array argmax, i64 pool_h, i64 pool_w, i64 stride,
                        i64 pad) {
  const PoolDims d = pool_dims(x, "x", pool_h, pool_w, stride, pad);
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  T* op = out_ptr<T>(out, "out", {d.N, d.C, d.OH, d.OW});
  std::int32_t* ap = out_ptr<std::int32_t>(argmax, "argmax", {d.N, d.C, d.OH, d.OW});
  py::gil_scoped_release release;
  cpu::maxpool_forward<T>(xp, op, ap, d.N, d.C, d.H, d.W, pool_h, pool_w, stride, pad);
}

template <typename T>
void maxpool_backward_py(py::array dout, py::array argmax, py::array dx, i64 pool_h, i64 pool_w, i64 stride,
                         i64 pad) {
  const PoolDims d = pool_dims(dx, "dx", pool_h, pool_w, stride, pad);
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C, d.OH, d.OW});
  const std::int32_t* ap = in_ptr<std::int32_t>(argmax, "argmax", {d.N, d.C, d.OH, d.OW});
  i64 bad = -1;
  {
    py::gil_scoped_release release;
    bad = cpu::maxpool_backward<T>(dp, ap, dxp, d.N, d.C, d.H, d.W, pool_h, pool_w, stride, pad);
  }
  if (bad >= 0)
    throw py::value_error("argmax: value " + std::to_string(ap[bad]) + " at flat index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(d.H * d.W) + ")");
}

template <typename T>
void avgpool_forward_py(py::array x, py::array out, i64 pool_h, i64 pool_w, i64 stride, i64 pad) {
  const PoolDims d = pool_dims(x, "x", pool_h, pool_w, stride, pad);
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  T* op = out_ptr<T>(out, "out", {d.N, d.C, d.OH, d.OW});
  py::gil_scoped_release release;
  cpu::avgpool_forward<T>(xp, op, d.N, d.C, d.H, d.W, pool_h, pool_w, stride, pad);
}

template <typename T>
void avgpool_backward_py(py::array dout, py::array dx, i64 pool_h, i64 pool_w, i64 stride, i64 pad) {
  const PoolDims d = pool_dims(dx, "dx", pool_h, pool_w, stride, pad);
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C, d.OH, d.OW});
  py::gil_scoped_release release;
  cpu::avgpool_backward<T>(dp, dxp, d.N, d.C, d.H, d.W, pool_h, pool_w, stride, pad);
}

}  // namespace

void bind_pool(py::module_& m) {
  FC_DEF_FLOATS(m, "maxpool_forward", maxpool_forward_py,
                 "Max pooling: x (N, C, H, W) -> out (N, C, OH, OW) and int32 argmax (ih*W + iw in the plane), "
                 "padding never wins, ties to the first, NaN propagates. Overwrites out and argmax.",
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
}

}  // namespace fastconv::bind
