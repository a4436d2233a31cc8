// bindings/affine.cpp: affine_forward / affine_backward (x (N, D), W (D, H), b (H,)); trans_w: the W argument
// is W^T, (H, D) C-contiguous (ops.py passes a transposed view's base this way instead of copying it).
#include "bindings/bind_util.h"
#include "cpu/affine.h"
#include "cpu/threads.h"

namespace fastconv::bind {

template <typename T>
void affine_forward_py(py::array x, py::array w, py::array b, py::array out, bool trans_w) {
  const std::int64_t N = dim(x, "x", 2, 0), D = dim(x, "x", 2, 1), H = dim(w, "W", 2, trans_w ? 0 : 1);
  const T* px = in_ptr<T>(x, "x", {N, D});
  const T* pw = trans_w ? in_ptr<T>(w, "W", {H, D}) : in_ptr<T>(w, "W", {D, H});
  const T* pb = in_ptr<T>(b, "b", {H});
  T* po = out_ptr<T>(out, "out", {N, H});
  py::gil_scoped_release nogil;
  cpu::affine_forward<T>(px, pw, pb, po, N, D, H, trans_w, cpu::num_threads());
}

template <typename T>
void affine_backward_py(py::array x, py::array w, py::array dout, py::array dx, py::array dw, py::array db,
                        bool trans_w) {
  const std::int64_t N = dim(x, "x", 2, 0), D = dim(x, "x", 2, 1), H = dim(w, "W", 2, trans_w ? 0 : 1);
  const T* px = in_ptr<T>(x, "x", {N, D});
  const T* pw = trans_w ? in_ptr<T>(w, "W", {H, D}) : in_ptr<T>(w, "W", {D, H});
  const T* pd = in_ptr<T>(dout, "dout", {N, H});
  T* pdx = out_ptr<T>(dx, "dx", {N, D});
  T* pdw = out_ptr<T>(dw, "dW", {D, H});
  T* pdb = out_ptr<T>(db, "db", {H});
  py::gil_scoped_release nogil;
  cpu::affine_backward<T>(px, pw, pd, pdx, pdw, pdb, N, D, H, trans_w, cpu::num_threads());
}

void bind_affine(py::module_& m) {
  FC_DEF_FLOATS(m, "affine_forward", affine_forward_py, "out = x @ W + b.", py::arg("x"), py::arg("W"),
                py::arg("b"), py::arg("out"), py::arg("trans_w") = false);
  FC_DEF_FLOATS(m, "affine_backward", affine_backward_py, "dx = dout @ W.T, dW = x.T @ dout, db = dout.sum(0).",
                py::arg("x"), py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("trans_w") = false);
  FC_DEF_HALVES(m, "affine_forward", affine_forward_py, "out = x @ W + b (float32 accumulation, one rounding).",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("trans_w") = false);
  FC_DEF_HALVES(m, "affine_backward", affine_backward_py,
                "dx = dout @ W.T, dW = x.T @ dout, db = dout.sum(0) (float32 accumulation, one rounding each).",
                py::arg("x"), py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("trans_w") = false);
  FC_DEF_POLICY(m, "affine_forward", affine_forward_py,
                "affine_forward on float64 arrays computed in float32 / float16 / bfloat16 (the compute policy).",
                py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("trans_w") = false);
  FC_DEF_POLICY(m, "affine_backward", affine_backward_py, "affine_backward under the compute policy.",
                py::arg("x"), py::arg("W"), py::arg("dout"), py::arg("dx"), py::arg("dW"), py::arg("db"),
                py::arg("trans_w") = false);
}

}  // namespace fastconv::bind
