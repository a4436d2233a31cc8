// bindings/spatial_batchnorm.cpp: spatial_batchnorm_forward_train, spatial_batchnorm_forward_infer,
// spatial_batchnorm_backward, each _f32 / _f64 / _f16 / _bf16. x is (N, C, H, W) with every dimension >= 1;
// per-channel vectors are (C,) of the array dtype, except the saved batch statistics mean and invstd, (C,)
// float64; eps > 0.
#include <cstdint>
#include <string>

#include "bindings/bind_util.h"
#include "cpu/spatial_batchnorm.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

void check_eps(double eps) {
  if (!(eps > 0.0)) throw py::value_error("eps must be > 0, got " + std::string(py::str(py::float_(eps))));
}

template <typename T>
void spatial_batchnorm_forward_train_py(py::array x, py::array gamma, py::array beta, py::array running_mean,
                                        py::array running_var, py::array out, py::array mean, py::array invstd,
                                        double momentum, double eps) {
  const Nchw d = nchw(x, "x");
  check_eps(eps);
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  const T* gp = in_ptr<T>(gamma, "gamma", {d.C});
  const T* bp = in_ptr<T>(beta, "beta", {d.C});
  T* rmp = out_ptr<T>(running_mean, "running_mean", {d.C});
  T* rvp = out_ptr<T>(running_var, "running_var", {d.C});
  T* op = out_ptr<T>(out, "out", {d.N, d.C, d.H, d.W});
  double* mp = out_ptr<double>(mean, "mean", {d.C});
  double* ip = out_ptr<double>(invstd, "invstd", {d.C});
  py::gil_scoped_release release;
  cpu::spatial_batchnorm_forward_train<T>(xp, gp, bp, rmp, rvp, op, mp, ip, d.N, d.C, d.H * d.W, momentum, eps);
}

template <typename T>
void spatial_batchnorm_forward_infer_py(py::array x, py::array gamma, py::array beta, py::array running_mean,
                                        py::array running_var, py::array out, double eps) {
  const Nchw d = nchw(x, "x");
  check_eps(eps);
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  const T* gp = in_ptr<T>(gamma, "gamma", {d.C});
  const T* bp = in_ptr<T>(beta, "beta", {d.C});
  const T* rmp = in_ptr<T>(running_mean, "running_mean", {d.C});
  const T* rvp = in_ptr<T>(running_var, "running_var", {d.C});
  T* op = out_ptr<T>(out, "out", {d.N, d.C, d.H, d.W});
  py::gil_scoped_release release;
  cpu::spatial_batchnorm_forward_infer<T>(xp, gp, bp, rmp, rvp, op, d.N, d.C, d.H * d.W, eps);
}

template <typename T>
void spatial_batchnorm_backward_py(py::array dout, py::array x, py::array mean, py::array invstd, py::array gamma,
                                   py::array dx, py::array dgamma, py::array dbeta) {
  const Nchw d = nchw(dout, "dout");
  const T* dp = in_ptr<T>(dout, "dout", {d.N, d.C, d.H, d.W});
  const T* xp = in_ptr<T>(x, "x", {d.N, d.C, d.H, d.W});
  const double* mp = in_ptr<double>(mean, "mean", {d.C});
  const double* ip = in_ptr<double>(invstd, "invstd", {d.C});
  const T* gp = in_ptr<T>(gamma, "gamma", {d.C});
  T* dxp = out_ptr<T>(dx, "dx", {d.N, d.C, d.H, d.W});
  T* dgp = out_ptr<T>(dgamma, "dgamma", {d.C});
  T* dbp = out_ptr<T>(dbeta, "dbeta", {d.C});
  py::gil_scoped_release release;
  cpu::spatial_batchnorm_backward<T>(dp, xp, mp, ip, gp, dxp, dgp, dbp, d.N, d.C, d.H * d.W);
}

}  // namespace

void bind_spatial_batchnorm(py::module_& m) {
  FC_DEF_ALL(m, "spatial_batchnorm_forward_train", spatial_batchnorm_forward_train_py,
             "Spatial batch norm, training: per-channel mean and biased variance of x (N, C, H, W) over "
             "(N, H, W); writes out = gamma * (x - mean) * invstd + beta, the float64 (C,) mean and invstd = "
             "1/sqrt(var + eps), and updates running_mean / running_var in place with momentum.",
             py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
             py::arg("out"), py::arg("mean"), py::arg("invstd"), py::arg("momentum"), py::arg("eps"));
  FC_DEF_ALL(m, "spatial_batchnorm_forward_infer", spatial_batchnorm_forward_infer_py,
             "Spatial batch norm, inference: out = gamma * (x - running_mean) / sqrt(running_var + eps) + "
             "beta, per channel of x (N, C, H, W).",
             py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
             py::arg("out"), py::arg("eps"));
  FC_DEF_ALL(m, "spatial_batchnorm_backward", spatial_batchnorm_backward_py,
             "Spatial batch norm backward: writes dx (N, C, H, W), dgamma and dbeta (C,) from dout, the "
             "forward input x, its float64 mean and invstd (C,), and gamma.",
             py::arg("dout"), py::arg("x"), py::arg("mean"), py::arg("invstd"), py::arg("gamma"), py::arg("dx"),
             py::arg("dgamma"), py::arg("dbeta"));
}

}  // namespace fastconv::bind
