// bindings/attention.cpp: weight_sum_*, attention_weight_*, attention_* (layouts in cpu/attention.h): hs /
// enc (N, S, H), h (N, H), dec (N, L, H), a (N, S) or (N, L, S).
#include "bindings/bind_util.h"
#include "cpu/attention.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

struct Enc {
  i64 N, S, H;
};
Enc enc_dims(const py::array& hs, const char* name) {
  return {dim(hs, name, 3, 0), dim(hs, name, 3, 1), dim(hs, name, 3, 2)};
}

template <typename T>
void weight_sum_forward_py(py::array hs, py::array a, py::array c) {
  const Enc d = enc_dims(hs, "hs");
  const T* ph = in_ptr<T>(hs, "hs", {d.N, d.S, d.H});
  const T* pa = in_ptr<T>(a, "a", {d.N, d.S});
  T* pc = out_ptr<T>(c, "c", {d.N, d.H});
  py::gil_scoped_release nogil;
  cpu::weight_sum_forward<T>(ph, pa, pc, d.N, d.S, d.H);
}

template <typename T>
void weight_sum_backward_py(py::array hs, py::array a, py::array dc, py::array dhs, py::array da) {
  const Enc d = enc_dims(hs, "hs");
  const T* ph = in_ptr<T>(hs, "hs", {d.N, d.S, d.H});
  const T* pa = in_ptr<T>(a, "a", {d.N, d.S});
  const T* pdc = in_ptr<T>(dc, "dc", {d.N, d.H});
  T* pdhs = out_ptr<T>(dhs, "dhs", {d.N, d.S, d.H});
  T* pda = out_ptr<T>(da, "da", {d.N, d.S});
  py::gil_scoped_release nogil;
  cpu::weight_sum_backward<T>(ph, pa, pdc, pdhs, pda, d.N, d.S, d.H);
}

template <typename T>
void attention_weight_forward_py(py::array hs, py::array h, py::array a) {
  const Enc d = enc_dims(hs, "hs");
  const T* ph = in_ptr<T>(hs, "hs", {d.N, d.S, d.H});
  const T* p1 = in_ptr<T>(h, "h", {d.N, d.H});
  T* pa = out_ptr<T>(a, "a", {d.N, d.S});
  py::gil_scoped_release nogil;
  cpu::attention_weight_forward<T>(ph, p1, pa, d.N, d.S, d.H);
}

template <typename T>
void attention_weight_backward_py(py::array hs, py::array h, py::array a, py::array da, py::array dhs,
                                  py::array dh) {
  const Enc d = enc_dims(hs, "hs");
  const T* ph = in_ptr<T>(hs, "hs", {d.N, d.S, d.H});
  const T* p1 = in_ptr<T>(h, "h", {d.N, d.H});
  const T* pa = in_ptr<T>(a, "a", {d.N, d.S});
  const T* pda = in_ptr<T>(da, "da", {d.N, d.S});
  T* pdhs = out_ptr<T>(dhs, "dhs", {d.N, d.S, d.H});
  T* pdh = out_ptr<T>(dh, "dh", {d.N, d.H});
  py::gil_scoped_release nogil;
  cpu::attention_weight_backward<T>(ph, p1, pa, pda, pdhs, pdh, d.N, d.S, d.H);
}

template <typename T>
void attention_forward_py(py::array enc, py::array dec, py::array a, py::array out) {
  const Enc d = enc_dims(enc, "hs_enc");
  const i64 L = dim(dec, "hs_dec", 3, 1);
  const T* pe = in_ptr<T>(enc, "hs_enc", {d.N, d.S, d.H});
  const T* pd = in_ptr<T>(dec, "hs_dec", {d.N, L, d.H});
  T* pa = out_ptr<T>(a, "a", {d.N, L, d.S});
  T* po = out_ptr<T>(out, "out", {d.N, L, d.H});
  py::gil_scoped_release nogil;
  cpu::attention_forward<T>(pe, pd, pa, po, d.N, d.S, L, d.H);
}

template <typename T>
void attention_backward_py(py::array enc, py::array dec, py::array a, py::array dout, py::array denc,
                           py::array ddec) {
  const Enc d = enc_dims(enc, "hs_enc");
  const i64 L = dim(dec, "hs_dec", 3, 1);
  const T* pe = in_ptr<T>(enc, "hs_enc", {d.N, d.S, d.H});
  const T* pd = in_ptr<T>(dec, "hs_dec", {d.N, L, d.H});
  const T* pa = in_ptr<T>(a, "a", {d.N, L, d.S});
  const T* pg = in_ptr<T>(dout, "dout", {d.N, L, d.H});
  T* pde = out_ptr<T>(denc, "dhs_enc", {d.N, d.S, d.H});
  T* pdd = out_ptr<T>(ddec, "dhs_dec", {d.N, L, d.H});
  py::gil_scoped_release nogil;
  cpu::attention_backward<T>(pe, pd, pa, pg, pde, pdd, d.N, d.S, L, d.H);
}

}  // namespace

void bind_attention(py::module_& m) {
  FC_DEF_ALL(m, "weight_sum_forward", weight_sum_forward_py, "c[n] = sum_s a[n, s] hs[n, s].",
             py::arg("hs"), py::arg("a"), py::arg("c"));
  FC_DEF_ALL(m, "weight_sum_backward", weight_sum_backward_py, "dhs, da of weight_sum_forward.",
             py::arg("hs"), py::arg("a"), py::arg("dc"), py::arg("dhs"), py::arg("da"));
  FC_DEF_ALL(m, "attention_weight_forward", attention_weight_forward_py, "a[n] = softmax(hs[n] @ h[n]).",
             py::arg("hs"), py::arg("h"), py::arg("a"));
  FC_DEF_ALL(m, "attention_weight_backward", attention_weight_backward_py,
             "dhs, dh of attention_weight_forward.", py::arg("hs"), py::arg("h"), py::arg("a"),
             py::arg("da"), py::arg("dhs"), py::arg("dh"));
  FC_DEF_ALL(m, "attention_forward", attention_forward_py,
             "a = softmax(hs_dec @ hs_enc^T), out = a @ hs_enc, per sequence.", py::arg("hs_enc"),
             py::arg("hs_dec"), py::arg("a"), py::arg("out"));
  FC_DEF_ALL(m, "attention_backward", attention_backward_py, "dhs_enc, dhs_dec of attention_forward.",
             py::arg("hs_enc"), py::arg("hs_dec"), py::arg("a"), py::arg("dout"), py::arg("dhs_enc"),
             py::arg("dhs_dec"));
}

}  // namespace fastconv::bind
