// bindings/conv.cpp: conv_forward / conv_backward and im2col / col2im (book layout).
#include "bindings/bind_util.h"
#include "common/geom.h"
#include "cpu/conv.h"
#include "cpu/im2col.h"
#include "cpu/threads.h"

namespace fastconv::bind {

template <typename T>
void conv_forward_py(py::array x, py::array w, py::array b, py::array out, std::int64_t stride, std::int64_t pad,
                     bool relu) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t FN = dim(w, "W", 4, 0), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const ConvGeom g = check_geom(WindowKind::filter, "x", N, C, H, W, FH, FW, stride, pad);
  const T* px = in_ptr<T>(x, "x", {N, C, H, W});
  const T* pw = in_ptr<T>(w, "W", {FN, C, FH, FW});
  const T* pb = in_ptr<T>(b, "b", {FN});
  T* po = out_ptr<T>(out, "out", {N, FN, g.OH, g.OW});
  py::gil_scoped_release nogil;
  cpu::conv_forward<T>(px, pw, pb, po, g, FN, cpu::num_threads(), relu);
}

template <typename T>
void conv_backward_py(py::array x, py::array w, py::array dout, py::object dx, py::array dw, py::array db,
                      std::int64_t stride, std::int64_t pad) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t FN = dim(w, "W", 4, 0), FH = dim(w, "W", 4, 2), FW = dim(w, "W", 4, 3);
  const ConvGeom g = check_geom(WindowKind::filter, "x", N, C, H, W, FH, FW, stride, pad);
  const T* px = in_ptr<T>(x, "x", {N, C, H, W});
  const T* pw = in_ptr<T>(w, "W", {FN, C, FH, FW});
  const T* pd = in_ptr<T>(dout, "dout", {N, FN, g.OH, g.OW});
  py::array dxa;  // dx None: no input gradient
  T* pdx = nullptr;
  if (!dx.is_none()) {
    // (no conversion: an array made from another object here would take the result and be dropped)
    if (!py::isinstance<py::array>(dx)) throw py::type_error("dx: expected a NumPy array or None");
    dxa = py::reinterpret_borrow<py::array>(dx);
    pdx = out_ptr<T>(dxa, "dx", {N, C, H, W});
  }
  T* pdw = out_ptr<T>(dw, "dW", {FN, C, FH, FW});
  T* pdb = out_ptr<T>(db, "db", {FN});
  py::gil_scoped_release nogil;
  cpu::conv_backward<T>(px, pw, pd, pdx, pdw, pdb, g, FN, cpu::num_threads());
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
                "out = conv2d(x, W) + b (cross-correlation, NCHW), ReLU'd in the same pass if relu.", py::arg("x"),
                py::arg("W"), py::arg("b"), py::arg("out"), py::arg("stride"), py::arg("pad"),
                py::arg("relu") = false);
  FC_DEF_FLOATS(m, "conv_backward", conv_backward_py,
                "dx, dW, db of conv_forward, written into dx, dW, db (dx None: dW and db only).",
                py::arg("x"), py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("stride"), py::arg("pad"));
}

void bind_im2col(py::module_& m) {
  FC_DEF_FLOATS(m, "im2col", im2col_py, "Book layout: x (N, C, H, W) -> col (N*OH*OW, C*FH*FW).",
                py::arg("input_data"), py::arg("col"), py::arg("filter_h"), py::arg("filter_w"), py::arg("stride"),
                py::arg("pad"));
  FC_DEF_FLOATS(m, "col2im", col2im_py, "Adjoint of im2col: scatter-add col into x (N, C, H, W).",
                py::arg("col"), py::arg("x"), py::arg("filter_h"), py::arg("filter_w"), py::arg("stride"),
                py::arg("pad"));
}

}  // namespace fastconv::bind
