// bindings/conv.cpp: conv_forward / conv_backward (any stride, padding, dilation, groups), deconv_forward /
// deconv_backward (transposed convolution) and im2col / col2im (book layout).
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "bindings/bind_util.h"
#include "common/geom.h"
#include "cpu/conv.h"
#include "cpu/im2col.h"
#include "cpu/threads.h"

namespace fastconv::bind {

using Pair = std::array<std::int64_t, 2>;
using Quad = std::array<std::int64_t, 4>;

template <typename T>
void conv_forward_py(py::array x, py::array w, py::object b, py::array out, Pair stride, Quad pad, Pair dilation,
                     std::int64_t groups, bool relu) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t FN = dim(w, "W", 4, 0), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const std::int64_t Cg = check_groups(C, FN, groups);
  const ConvGeom g = check_geom(WindowKind::filter, "x", N, C, H, W, WindowArgs{FH, FW, stride, pad, dilation});
  const T* px = in_ptr<T>(x, "x", {N, C, H, W});
  const T* pw = in_ptr<T>(w, "W", {FN, Cg, FH, FW});
  const T* pb = optional_in<T>(b, "b", FN);
  T* po = out_ptr<T>(out, "out", {N, FN, g.OH, g.OW});
  py::gil_scoped_release nogil;
  cpu::conv_forward_groups<T>(px, pw, pb, po, g, FN, groups, cpu::num_threads(), relu);
}

template <typename T>
void conv_backward_py(py::array x, py::array w, py::array dout, py::object dx, py::array dw, py::array db,
                      Pair stride, Quad pad, Pair dilation, std::int64_t groups) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t FN = dim(w, "W", 4, 0), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const std::int64_t Cg = check_groups(C, FN, groups);
  const ConvGeom g = check_geom(WindowKind::filter, "x", N, C, H, W, WindowArgs{FH, FW, stride, pad, dilation});
  const T* px = in_ptr<T>(x, "x", {N, C, H, W});
  const T* pw = in_ptr<T>(w, "W", {FN, Cg, FH, FW});
  const T* pd = in_ptr<T>(dout, "dout", {N, FN, g.OH, g.OW});
  T* pdx = optional_out<T>(dx, "dx", {N, C, H, W});
  T* pdw = out_ptr<T>(dw, "dW", {FN, Cg, FH, FW});
  T* pdb = out_ptr<T>(db, "db", {FN});
  py::gil_scoped_release nogil;
  cpu::conv_backward_groups<T>(px, pw, pd, pdx, pdw, pdb, g, FN, groups, cpu::num_threads());
}

template <typename T>
void deconv_forward_py(py::array x, py::array w, py::object b, py::array y, Pair stride, Quad pad) {
  const std::int64_t N = dim(x, "x", 4, 0), C_in = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t C_out = dim(w, "W", 4, 1), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const std::int64_t OH = dim(y, "y", 4, 2), OW = dim(y, "y", 4, 3);
  const ConvGeom g = check_deconv_geom(N, C_out, OH, OW, H, W, WindowArgs{FH, FW, stride, pad, {1, 1}});
  const T* px = in_ptr<T>(x, "x", {N, C_in, H, W});
  const T* pw = in_ptr<T>(w, "W", {C_in, C_out, FH, FW});
  const T* pb = optional_in<T>(b, "b", C_out);
  T* py_ = out_ptr<T>(y, "y", {N, C_out, OH, OW});
  py::gil_scoped_release nogil;
  cpu::deconv_forward<T>(px, pw, pb, py_, g, C_in, cpu::num_threads());
}

template <typename T>
void deconv_backward_py(py::array x, py::array w, py::array dy, py::object dx, py::array dw, py::array db,
                        Pair stride, Quad pad) {
  const std::int64_t N = dim(x, "x", 4, 0), C_in = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t C_out = dim(w, "W", 4, 1), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const std::int64_t OH = dim(dy, "dy", 4, 2), OW = dim(dy, "dy", 4, 3);
  const ConvGeom g = check_deconv_geom(N, C_out, OH, OW, H, W, WindowArgs{FH, FW, stride, pad, {1, 1}});
  const T* px = in_ptr<T>(x, "x", {N, C_in, H, W});
  const T* pw = in_ptr<T>(w, "W", {C_in, C_out, FH, FW});
  const T* pdy = in_ptr<T>(dy, "dy", {N, C_out, OH, OW});
  T* pdx = optional_out<T>(dx, "dx", {N, C_in, H, W});
  T* pdw = out_ptr<T>(dw, "dW", {C_in, C_out, FH, FW});
  T* pdb = out_ptr<T>(db, "db", {C_out});
  py::gil_scoped_release nogil;
  cpu::deconv_backward<T>(px, pw, pdy, pdx, pdw, pdb, g, C_in, cpu::num_threads());
}

template <typename T>
void im2col_py(py::array x, py::array col, std::int64_t filter_h, std::int64_t filter_w, std::int64_t stride,
               std::int64_t pad) {
  const std::int64_t N = dim(x, "input_data", 4, 0), C = dim(x, "input_data", 4, 1);
  const std::int64_t H = dim(x, "input_data", 4, 2), W = dim(x, "input_data", 4, 3);
  const ConvGeom g = check_geom(WindowKind::filter, "input_data", N, C, H, W, filter_h, filter_w, stride, pad);
  const T* px = in_ptr<T>(x, "input_data", {N, C, H, W});
  T* pc = out_ptr<T>(col, "col", {g.col_rows(), g.col_cols()});
  py::gil_scoped_release nogil;
  cpu::im2col<T>(px, g, pc, cpu::num_threads());
}

template <typename T>
void col2im_py(py::array col, py::array x, std::int64_t filter_h, std::int64_t filter_w, std::int64_t stride,
               std::int64_t pad) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const ConvGeom g = check_geom(WindowKind::filter, "x", N, C, H, W, filter_h, filter_w, stride, pad);
  const T* pc = in_ptr<T>(col, "col", {g.col_rows(), g.col_cols()});
  T* px = out_ptr<T>(x, "x", {N, C, H, W});
  py::gil_scoped_release nogil;
  cpu::col2im<T>(pc, g, px, cpu::num_threads());
}

void bind_conv(py::module_& m) {
  FC_DEF_FLOATS(m, "conv_forward", conv_forward_py,
                "out = conv2d(x, W) + b (cross-correlation, NCHW; b None: no bias), ReLU'd in the same pass if "
                "relu. stride (sh, sw), pad (top, bottom, left, right), dilation (dh, dw); groups: W is "
                "(FN, C/groups, FH, FW) (groups == C: the depthwise kernel).",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("stride"), py::arg("pad"),
                py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("relu") = false);
  FC_DEF_FLOATS(m, "conv_backward", conv_backward_py,
                "dx, dW, db of conv_forward, written into dx, dW, db (dx None: dW and db only).",
                py::arg("x"), py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("stride"), py::arg("pad"), py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1);
  FC_DEF_FLOATS(m, "deconv_forward", deconv_forward_py,
                "Transposed convolution: x (N, C_in, H, W), W (C_in, C_out, FH, FW) -> y (N, C_out, OH, OW), the "
                "input gradient of the convolution of y with W (stride, pad as there) + b (None: no bias). "
                "Overwrites y, whose shape fixes the output padding.",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("y"), py::arg("stride"), py::arg("pad"));
  FC_DEF_FLOATS(m, "deconv_backward", deconv_backward_py,
                "dx, dW, db of deconv_forward given dy, written into dx (None: skipped), dW, db.", py::arg("x"),
                py::arg("W"), py::arg("dy"), py::arg("dx"), py::arg("dW"), py::arg("db"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_HALVES(m, "conv_forward", conv_forward_py, "conv_forward for float16 / bfloat16 (float32 accumulation).",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("stride"), py::arg("pad"),
                py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("relu") = false);
  FC_DEF_HALVES(m, "conv_backward", conv_backward_py, "conv_backward for float16 / bfloat16.", py::arg("x"),
                py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"), py::arg("stride"),
                py::arg("pad"), py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1);
  FC_DEF_HALVES(m, "deconv_forward", deconv_forward_py, "deconv_forward for float16 / bfloat16.", py::arg("x"),
                py::arg("W"), py::arg("b"), py::arg("y"), py::arg("stride"), py::arg("pad"));
  FC_DEF_HALVES(m, "deconv_backward", deconv_backward_py, "deconv_backward for float16 / bfloat16.",
                py::arg("x"), py::arg("W"), py::arg("dy"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("stride"), py::arg("pad"));
  FC_DEF_POLICY(m, "conv_forward", conv_forward_py,
                "conv_forward on float64 arrays computed in float32 / float16 / bfloat16 (the compute policy).",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("stride"), py::arg("pad"),
                py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("relu") = false);
  FC_DEF_POLICY(m, "conv_backward", conv_backward_py, "conv_backward under the compute policy.", py::arg("x"),
                py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"), py::arg("stride"),
                py::arg("pad"), py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1);
  FC_DEF_POLICY(m, "deconv_forward", deconv_forward_py, "deconv_forward under the compute policy.", py::arg("x"),
                py::arg("W"), py::arg("b"), py::arg("y"), py::arg("stride"), py::arg("pad"));
  FC_DEF_POLICY(m, "deconv_backward", deconv_backward_py, "deconv_backward under the compute policy.",
                py::arg("x"), py::arg("W"), py::arg("dy"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("stride"), py::arg("pad"));
}

void bind_im2col(py::module_& m) {
  FC_DEF_ALL(m, "im2col", im2col_py, "Book layout: x (N, C, H, W) -> col (N*OH*OW, C*FH*FW).",
             py::arg("input_data"), py::arg("col"), py::arg("filter_h"), py::arg("filter_w"), py::arg("stride"),
             py::arg("pad"));
  FC_DEF_ALL(m, "col2im", col2im_py, "Adjoint of im2col: scatter-add col into x (N, C, H, W).",
             py::arg("col"), py::arg("x"), py::arg("filter_h"), py::arg("filter_w"), py::arg("stride"),
             py::arg("pad"));
}

}  // namespace fastconv::bind
