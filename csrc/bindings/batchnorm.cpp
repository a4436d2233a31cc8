// bindings/batchnorm.cpp: batchnorm_forward_train, batchnorm_forward_infer, batchnorm_backward, each
// _f32 / _f64 / _f16 / _bf16. x is (N, D) with N, D >= 1; per-column vectors are (D,); eps > 0.
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "common/check.h"
#include "cpu/batchnorm.h"

namespace fastconv::bind {
namespace {

void check_eps(double eps) {
  if (!(eps > 0.0)) throw py::value_error("eps must be > 0, got " + std::string(py::str(py::float_(eps))));
}

template <typename T>
void batchnorm_forward_train_py(py::array x, py::array gamma, py::array beta, py::array running_mean,
                                py::array running_var, py::array out, py::array xc, py::array xn, py::array stdev,
                                double momentum, double eps) {
  const auto [N, D] = matrix_dims(x, "x", "D");
  check_eps(eps);
  const T* xp = in_ptr<T>(x, "x", {N, D});
  const T* gp = in_ptr<T>(gamma, "gamma", {D});
  const T* bp = in_ptr<T>(beta, "beta", {D});
  T* rmp = out_ptr<T>(running_mean, "running_mean", {D});
  T* rvp = out_ptr<T>(running_var, "running_var", {D});
  T* op = out_ptr<T>(out, "out", {N, D});
  T* xcp = out_ptr<T>(xc, "xc", {N, D});
  T* xnp = out_ptr<T>(xn, "xn", {N, D});
  T* sp = out_ptr<T>(stdev, "std", {D});
  py::gil_scoped_release release;
  cpu::batchnorm_forward_train<T>(xp, gp, bp, rmp, rvp, op, xcp, xnp, sp, N, D, momentum, eps);
}

template <typename T>
void batchnorm_forward_infer_py(py::array x, py::array gamma, py::array beta, py::array running_mean,
                                py::array running_var, py::array out, double eps) {
  const auto [N, D] = matrix_dims(x, "x", "D");
  check_eps(eps);
  const T* xp = in_ptr<T>(x, "x", {N, D});
  const T* gp = in_ptr<T>(gamma, "gamma", {D});
  const T* bp = in_ptr<T>(beta, "beta", {D});
  const T* rmp = in_ptr<T>(running_mean, "running_mean", {D});
  const T* rvp = in_ptr<T>(running_var, "running_var", {D});
  T* op = out_ptr<T>(out, "out", {N, D});
  py::gil_scoped_release release;
  cpu::batchnorm_forward_infer<T>(xp, gp, bp, rmp, rvp, op, N, D, eps);
}

template <typename T>
void batchnorm_backward_py(py::array dout, py::array xc, py::array xn, py::array stdev, py::array gamma,
                           py::array dx, py::array dgamma, py::array dbeta) {
  const auto [N, D] = matrix_dims(dout, "dout", "D");
  const T* dp = in_ptr<T>(dout, "dout", {N, D});
  const T* xcp = in_ptr<T>(xc, "xc", {N, D});
  const T* xnp = in_ptr<T>(xn, "xn", {N, D});
  const T* sp = in_ptr<T>(stdev, "std", {D});
  const T* gp = in_ptr<T>(gamma, "gamma", {D});
  T* dxp = out_ptr<T>(dx, "dx", {N, D});
  T* dgp = out_ptr<T>(dgamma, "dgamma", {D});
  T* dbp = out_ptr<T>(dbeta, "dbeta", {D});
  py::gil_scoped_release release;
  cpu::batchnorm_backward<T>(dp, xcp, xnp, sp, gp, dxp, dgp, dbp, N, D);
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  FC_DEF_ALL(m, "batchnorm_forward_train", batchnorm_forward_train_py,
             "Batch norm, training: per-column mean / variance of x (N, D); writes xc = x - mu, std = "
             "sqrt(var + eps), xn = xc / std, out = gamma * xn + beta, and updates running_mean / "
             "running_var in place with momentum.",
             py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
             py::arg("out"), py::arg("xc"), py::arg("xn"), py::arg("std"), py::arg("momentum"),
             py::arg("eps"));
  FC_DEF_ALL(m, "batchnorm_forward_infer", batchnorm_forward_infer_py,
             "Batch norm, inference: out = gamma * ((x - running_mean) / sqrt(running_var + eps)) + beta.",
             py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
             py::arg("out"), py::arg("eps"));
  FC_DEF_ALL(m, "batchnorm_backward", batchnorm_backward_py,
             "Batch norm backward (the book's formulas): writes dx (N, D), dgamma and dbeta (D,) from dout, "
             "xc, xn (N, D) and std, gamma (D,).",
             py::arg("dout"), py::arg("xc"), py::arg("xn"), py::arg("std"), py::arg("gamma"), py::arg("dx"),
             py::arg("dgamma"), py::arg("dbeta"));
}

}  // namespace fastconv::bind
