// bindings/optim.cpp: <opt>_update_{f32,f64} for sgd, momentum, nesterov, adagrad, rmsprop, adam, adadelta.
// In place on contiguous 1-D arrays of one length n (ops.py passes ravelled views): p and the state arrays are
// written, g is read. The arrays must not overlap each other (checked here: the kernels assume it).
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/bind_util.h"
#include "cpu/optim.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

struct Span {
  const char* name;
  const char* lo;
  const char* hi;
};

// Rejects any two of the arrays sharing bytes (extents already checked).
inline void check_disjoint(std::initializer_list<Span> spans) {
  std::vector<Span> s(spans);
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t j = i + 1; j < s.size(); ++j)
      if (s[i].lo < s[j].hi && s[j].lo < s[i].hi)
        throw py::value_error(std::string(s[i].name) + " and " + s[j].name + " overlap in memory");
}

template <typename T>
Span span(const char* name, const T* ptr, i64 n) {
  const char* lo = reinterpret_cast<const char*>(ptr);
  return {name, lo, lo + n * static_cast<i64>(sizeof(T))};
}

template <typename T>
void sgd_update_py(py::array p, py::array g, double lr, double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n)});
  py::gil_scoped_release release;
  cpu::sgd_update<T>(pp, gp, n, lr, weight_decay);
}

template <typename T>
void momentum_update_py(py::array p, py::array g, py::array v, double lr, double momentum, double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* vp = out_ptr<T>(v, "v", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("v", vp, n)});
  py::gil_scoped_release release;
  cpu::momentum_update<T>(pp, gp, vp, n, lr, momentum, weight_decay);
}

template <typename T>
void nesterov_update_py(py::array p, py::array g, py::array v, double lr, double momentum, double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* vp = out_ptr<T>(v, "v", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("v", vp, n)});
  py::gil_scoped_release release;
  cpu::nesterov_update<T>(pp, gp, vp, n, lr, momentum, weight_decay);
}

template <typename T>
void adagrad_update_py(py::array p, py::array g, py::array h, double lr, double eps, double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* hp = out_ptr<T>(h, "h", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("h", hp, n)});
  py::gil_scoped_release release;
  cpu::adagrad_update<T>(pp, gp, hp, n, lr, eps, weight_decay);
}

template <typename T>
void rmsprop_update_py(py::array p, py::array g, py::array h, double lr, double decay_rate, double eps,
                       double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* hp = out_ptr<T>(h, "h", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("h", hp, n)});
  py::gil_scoped_release release;
  cpu::rmsprop_update<T>(pp, gp, hp, n, lr, decay_rate, eps, weight_decay);
}

template <typename T>
void adam_update_py(py::array p, py::array g, py::array m, py::array v, double lr_t, double beta1, double beta2,
                    double eps, double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* mp = out_ptr<T>(m, "m", {n});
  T* vp = out_ptr<T>(v, "v", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("m", mp, n), span("v", vp, n)});
  py::gil_scoped_release release;
  cpu::adam_update<T>(pp, gp, mp, vp, n, lr_t, beta1, beta2, eps, weight_decay);
}

template <typename T>
void adadelta_update_py(py::array p, py::array g, py::array h, py::array d, double lr, double rho, double eps,
                        double weight_decay) {
  const i64 n = dim(p, "p", 1, 0);
  T* pp = out_ptr<T>(p, "p", {n});
  const T* gp = in_ptr<T>(g, "g", {n});
  T* hp = out_ptr<T>(h, "h", {n});
  T* dp = out_ptr<T>(d, "d", {n});
  check_disjoint({span("p", pp, n), span("g", gp, n), span("h", hp, n), span("d", dp, n)});
  py::gil_scoped_release release;
  cpu::adadelta_update<T>(pp, gp, hp, dp, n, lr, rho, eps, weight_decay);
}

}  // namespace

void bind_optim(py::module_& m) {
  FC_DEF_F32_F64(m, "sgd_update", sgd_update_py, "SGD in place: p -= lr * g.", py::arg("p"), py::arg("g"),
                 py::arg("lr"), py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "momentum_update", momentum_update_py,
                 "Momentum in place: v = momentum*v - lr*g; p += v.", py::arg("p"), py::arg("g"), py::arg("v"),
                 py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "nesterov_update", nesterov_update_py,
                 "Nesterov (book form) in place: v = momentum*v - lr*g; p += momentum**2*v - (1+momentum)*lr*g.",
                 py::arg("p"), py::arg("g"), py::arg("v"), py::arg("lr"), py::arg("momentum"),
                 py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "adagrad_update", adagrad_update_py,
                 "AdaGrad in place: h += g*g; p -= lr*g / (sqrt(h) + eps).", py::arg("p"), py::arg("g"),
                 py::arg("h"), py::arg("lr"), py::arg("eps"), py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "rmsprop_update", rmsprop_update_py,
                 "RMSprop in place: h = decay_rate*h + (1-decay_rate)*g*g; p -= lr*g / (sqrt(h) + eps).",
                 py::arg("p"), py::arg("g"), py::arg("h"), py::arg("lr"), py::arg("decay_rate"), py::arg("eps"),
                 py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "adam_update", adam_update_py,
                 "Adam (book form, bias correction in lr_t) in place: m += (1-beta1)*(g-m); "
                 "v += (1-beta2)*(g*g-v); p -= lr_t*m / (sqrt(v) + eps).",
                 py::arg("p"), py::arg("g"), py::arg("m"), py::arg("v"), py::arg("lr_t"), py::arg("beta1"),
                 py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"));
  FC_DEF_F32_F64(m, "adadelta_update", adadelta_update_py,
                 "Adadelta in place: h = rho*h + (1-rho)*g*g; dx = sqrt(d+eps)/sqrt(h+eps)*g; "
                 "d = rho*d + (1-rho)*dx*dx; p -= lr*dx.",
                 py::arg("p"), py::arg("g"), py::arg("h"), py::arg("d"), py::arg("lr"), py::arg("rho"),
                 py::arg("eps"), py::arg("weight_decay"));
}

}  // namespace fastconv::bind
