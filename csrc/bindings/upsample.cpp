// bindings/upsample.cpp: upsample_{nearest,bilinear}_{forward,backward}, each _f32 / _f64 / _f16 / _bf16.
// x and dx are (N, C, H, W) with every dimension >= 1; out and dout are (N, C, H*sh, W*sw); sh, sw >= 1.
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "common/check.h"
#include "cpu/upsample.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

// The extents of the small side (x forward, dx backward) and the checked scale factors.
Nchw small_side(const py::array& a, const char* name, i64 sh, i64 sw) {
  FC_CHECK(sh >= 1, "scale_h must be >= 1, got " << sh);
  FC_CHECK(sw >= 1, "scale_w must be >= 1, got " << sw);
  const Nchw d = nchw(a, name);
  checked_size("out", d.N, d.C, d.H, sh, d.W, sw);
  return d;
}

template <typename T, void (*K)(const T*, T*, i64, i64, i64, i64, i64)>
void forward_py(py::array x, py::array out, i64 sh, i64 sw) {
  const Nchw d = small_side(x, "x", sh, sw);
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  T* op = out_ptr<T>(out, "out", {d.N, d.C, d.H * sh, d.W * sw});
  py::gil_scoped_release release;
  K(xp, op, d.N * d.C, d.H, d.W, sh, sw);
}

template <typename T, void (*K)(const T*, T*, i64, i64, i64, i64, i64)>
void backward_py(py::array dout, py::array dx, i64 sh, i64 sw) {
  const Nchw d = small_side(dx, "dx", sh, sw);
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C, d.H * sh, d.W * sw});
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  py::gil_scoped_release release;
  K(dp, dxp, d.N * d.C, d.H, d.W, sh, sw);
}

template <typename T>
void nearest_forward_py(py::array x, py::array out, i64 sh, i64 sw) {
  forward_py<T, cpu::upsample_nearest_forward<T>>(x, out, sh, sw);
}
template <typename T>
void nearest_backward_py(py::array dout, py::array dx, i64 sh, i64 sw) {
  backward_py<T, cpu::upsample_nearest_backward<T>>(dout, dx, sh, sw);
}
template <typename T>
void bilinear_forward_py(py::array x, py::array out, i64 sh, i64 sw) {
  forward_py<T, cpu::upsample_bilinear_forward<T>>(x, out, sh, sw);
}
template <typename T>
void bilinear_backward_py(py::array dout, py::array dx, i64 sh, i64 sw) {
  backward_py<T, cpu::upsample_bilinear_backward<T>>(dout, dx, sh, sw);
}

}  // namespace

void bind_upsample(py::module_& m) {
  FC_DEF_ALL(m, "upsample_nearest_forward", nearest_forward_py,
             "Nearest upsampling of x (N, C, H, W) into out (N, C, H*scale_h, W*scale_w).", py::arg("x"),
             py::arg("out"), py::arg("scale_h"), py::arg("scale_w"));
  FC_DEF_ALL(m, "upsample_nearest_backward", nearest_backward_py,
             "Nearest upsampling backward: dx (N, C, H, W) = block sums of dout (N, C, H*scale_h, W*scale_w).",
             py::arg("dout"), py::arg("dx"), py::arg("scale_h"), py::arg("scale_w"));
  FC_DEF_ALL(m, "upsample_bilinear_forward", bilinear_forward_py,
             "Bilinear upsampling (align_corners=False) of x (N, C, H, W) into out (N, C, H*scale_h, "
             "W*scale_w).",
             py::arg("x"), py::arg("out"), py::arg("scale_h"), py::arg("scale_w"));
  FC_DEF_ALL(m, "upsample_bilinear_backward", bilinear_backward_py,
             "Bilinear upsampling backward: dx (N, C, H, W), the adjoint of the forward applied to dout.",
             py::arg("dout"), py::arg("dx"), py::arg("scale_h"), py::arg("scale_w"));
}

}  // namespace fastconv::bind
