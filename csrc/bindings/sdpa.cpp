// bindings/sdpa.cpp: sdpa_forward / sdpa_backward (layouts in cpu/sdpa.h): q (B, L, E), k (B, S, E), v (B, S,
// F), p and mask (B, L, S), out (B, L, F); mask is None without attention dropout.
#include "bindings/bind_util.h"
#include "cpu/sdpa.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

struct Dims {
  i64 B, L, S, E, F;
};
Dims sdpa_dims(const py::array& q, const py::array& k, const py::array& v) {
  return {dim(q, "q", 3, 0), dim(q, "q", 3, 1), dim(k, "k", 3, 1), dim(q, "q", 3, 2), dim(v, "v", 3, 2)};
}

template <typename T>
const T* mask_ptr(const py::object& mask, const Dims& d) {
  return mask.is_none() ? nullptr : in_ptr<T>(mask.cast<py::array>(), "mask", {d.B, d.L, d.S});
}

template <typename T>
void sdpa_forward_py(py::array q, py::array k, py::array v, py::object mask, py::array p, py::array out,
                     double scale) {
  const Dims d = sdpa_dims(q, k, v);
  const T* pq = in_ptr<T>(q, "q", {d.B, d.L, d.E});
  const T* pk = in_ptr<T>(k, "k", {d.B, d.S, d.E});
  const T* pv = in_ptr<T>(v, "v", {d.B, d.S, d.F});
  const T* pm = mask_ptr<T>(mask, d);
  T* pp = out_ptr<T>(p, "p", {d.B, d.L, d.S});
  T* po = out_ptr<T>(out, "out", {d.B, d.L, d.F});
  py::gil_scoped_release nogil;
  cpu::sdpa_forward<T>(pq, pk, pv, pm, pp, po, d.B, d.L, d.S, d.E, d.F, scale);
}

template <typename T>
void sdpa_backward_py(py::array q, py::array k, py::array v, py::array p, py::object mask, py::array dout,
                      py::array dq, py::array dk, py::array dv, double scale) {
  const Dims d = sdpa_dims(q, k, v);
  const T* pq = in_ptr<T>(q, "q", {d.B, d.L, d.E});
  const T* pk = in_ptr<T>(k, "k", {d.B, d.S, d.E});
  const T* pv = in_ptr<T>(v, "v", {d.B, d.S, d.F});
  const T* pp = in_ptr<T>(p, "p", {d.B, d.L, d.S});
  const T* pm = mask_ptr<T>(mask, d);
  const T* pg = in_ptr<T>(dout, "dout", {d.B, d.L, d.F});
  T* pdq = out_ptr<T>(dq, "dq", {d.B, d.L, d.E});
  T* pdk = out_ptr<T>(dk, "dk", {d.B, d.S, d.E});
  T* pdv = out_ptr<T>(dv, "dv", {d.B, d.S, d.F});
  py::gil_scoped_release nogil;
  cpu::sdpa_backward<T>(pq, pk, pv, pp, pm, pg, pdq, pdk, pdv, d.B, d.L, d.S, d.E, d.F, scale);
}

}  // namespace

void bind_sdpa(py::module_& m) {
  FC_DEF_ALL(m, "sdpa_forward", sdpa_forward_py,
             "p = softmax(scale q k^T), out = (p [* mask]) v per head.", py::arg("q"), py::arg("k"),
             py::arg("v"), py::arg("mask"), py::arg("p"), py::arg("out"), py::arg("scale"));
  FC_DEF_ALL(m, "sdpa_backward", sdpa_backward_py, "dq, dk, dv of sdpa_forward.", py::arg("q"),
             py::arg("k"), py::arg("v"), py::arg("p"), py::arg("mask"), py::arg("dout"), py::arg("dq"),
             py::arg("dk"), py::arg("dv"), py::arg("scale"));
}

}  // namespace fastconv::bind
