// bindings/layernorm.cpp: layernorm_forward / layernorm_backward (x (M, D), gamma and beta (D,), mean and
// rstd (M,)).
#include "bindings/bind_util.h"
#include "cpu/layernorm.h"

namespace fastconv::bind {
namespace {

template <typename T>
void layernorm_forward_py(py::array x, py::array gamma, py::array beta, py::array out, py::array mean,
                          py::array rstd, double eps) {
  const std::int64_t M = dim(x, "x", 2, 0), D = dim(x, "x", 2, 1);
  const T* px = in_ptr<T>(x, "x", {M, D});
  const T* pg = in_ptr<T>(gamma, "gamma", {D});
  const T* pb = in_ptr<T>(beta, "beta", {D});
  T* po = out_ptr<T>(out, "out", {M, D});
  T* pm = out_ptr<T>(mean, "mean", {M});
  T* pr = out_ptr<T>(rstd, "rstd", {M});
  py::gil_scoped_release nogil;
  cpu::layernorm_forward<T>(px, pg, pb, po, pm, pr, M, D, eps);
}

template <typename T>
void layernorm_backward_py(py::array x, py::array gamma, py::array mean, py::array rstd, py::array dout,
                           py::array dx, py::array dgamma, py::array dbeta) {
  const std::int64_t M = dim(x, "x", 2, 0), D = dim(x, "x", 2, 1);
  const T* px = in_ptr<T>(x, "x", {M, D});
  const T* pg = in_ptr<T>(gamma, "gamma", {D});
  const T* pm = in_ptr<T>(mean, "mean", {M});
  const T* pr = in_ptr<T>(rstd, "rstd", {M});
  const T* pd = in_ptr<T>(dout, "dout", {M, D});
  T* pdx = out_ptr<T>(dx, "dx", {M, D});
  T* pdg = out_ptr<T>(dgamma, "dgamma", {D});
  T* pdb = out_ptr<T>(dbeta, "dbeta", {D});
  py::gil_scoped_release nogil;
  cpu::layernorm_backward<T>(px, pg, pm, pr, pd, pdx, pdg, pdb, M, D);
}

}  // namespace

void bind_layernorm(py::module_& m) {
  FC_DEF_ALL(m, "layernorm_forward", layernorm_forward_py,
             "out = (x - mean) * rstd * gamma + beta per row; writes mean and rstd.", py::arg("x"),
             py::arg("gamma"), py::arg("beta"), py::arg("out"), py::arg("mean"), py::arg("rstd"),
             py::arg("eps"));
  FC_DEF_ALL(m, "layernorm_backward", layernorm_backward_py, "dx, dgamma, dbeta of layernorm_forward.",
             py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("rstd"), py::arg("dout"),
             py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"));
}

}  // namespace fastconv::bind
