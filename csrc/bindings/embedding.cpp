// bindings/embedding.cpp: embedding_forward / embedding_backward (W (V, D), idx int64 (M,), rows (M, D)).
// Every id is checked to be in [0, V) before a kernel reads through it.
#include <string>

#include "bindings/bind_util.h"
#include "cpu/embedding.h"
#include "cpu/loss.h"

namespace fastconv::bind {
namespace {

const std::int64_t* ids_ptr(const py::array& idx, std::int64_t M, std::int64_t V) {
  const std::int64_t* p = in_ptr<std::int64_t>(idx, "idx", {M});
  const std::int64_t bad = cpu::first_bad_label(p, M, V);
  if (bad >= 0)
    throw py::value_error("idx: id " + std::to_string(p[bad]) + " at index " + std::to_string(bad) +
                          " is out of range [0, " + std::to_string(V) + ")");
  return p;
}

template <typename T>
void embedding_forward_py(py::array w, py::array idx, py::array out) {
  const std::int64_t V = dim(w, "W", 2, 0), D = dim(w, "W", 2, 1), M = dim(idx, "idx", 1, 0);
  const T* pw = in_ptr<T>(w, "W", {V, D});
  const std::int64_t* pi = ids_ptr(idx, M, V);
  T* po = out_ptr<T>(out, "out", {M, D});
  py::gil_scoped_release nogil;
  cpu::embedding_forward<T>(pw, pi, po, M, D);
}

template <typename T>
void embedding_backward_py(py::array dout, py::array idx, py::array dw) {
  const std::int64_t V = dim(dw, "dW", 2, 0), D = dim(dw, "dW", 2, 1), M = dim(idx, "idx", 1, 0);
  const T* pd = in_ptr<T>(dout, "dout", {M, D});
  const std::int64_t* pi = ids_ptr(idx, M, V);
  T* pdw = out_ptr<T>(dw, "dW", {V, D});
  py::gil_scoped_release nogil;
  cpu::embedding_backward<T>(pd, pi, pdw, M, V, D);
}

}  // namespace

void bind_embedding(py::module_& m) {
  FC_DEF_ALL(m, "embedding_forward", embedding_forward_py, "out[m] = W[idx[m]].", py::arg("W"),
             py::arg("idx"), py::arg("out"));
  FC_DEF_ALL(m, "embedding_backward", embedding_backward_py, "dW = 0; dW[idx[m]] += dout[m] for every m.",
             py::arg("dout"), py::arg("idx"), py::arg("dW"));
}

}  // namespace fastconv::bind
