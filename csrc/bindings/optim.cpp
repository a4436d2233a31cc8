// bindings/optim.cpp: <opt>_update_{f32,f64,f16,bf16} for sgd, momentum, nesterov, adagrad, rmsprop, adam,
// adadelta and Keras' keras_nesterov, keras_adagrad, keras_rmsprop.
// One call updates a whole parameter set in place: lists of parameters p, gradients g and each state array
// (entry i of every list belongs to parameter i), then the scalars, then optional keys for error messages.
// Every array is checked (dtype, C-contiguous, aligned, writeable where written, its parameter's shape), and
// a parameter's p and state arrays must not overlap, before anything is written; then the GIL is released and
// the kernels run one parameter after the other. A gradient that overlaps its parameter or state is copied
// first (as ops.gemm copies an overlapping operand), so the kernels' no-alias contract always holds.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/bind_util.h"
#include "common/check.h"
#include "cpu/optim.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

// "kind[key]" with the caller's key for parameter i, or "kind[i]"; built only for an error message.
struct Name {
  const char* kind;
  std::size_t i;
  const py::object& keys;
  std::string str() const {
    std::string key = std::to_string(i);
    if (py::isinstance<py::list>(keys)) {
      py::list k = py::reinterpret_borrow<py::list>(keys);
      if (i < k.size()) key = std::string(py::repr(k[i]));
    }
    return std::string(kind) + "[" + key + "]";
  }
};

struct Span {
  const char* lo;
  const char* hi;
  bool overlaps(const Span& o) const { return lo < o.hi && o.lo < hi; }
};

// The checked arrays of one call: parameter i has p[i], g[i], s[j][i] (state j), all of n[i] elements.
template <typename T, int S>
struct Batch {
  std::vector<py::array> keep;  // owns a reference to every array while the GIL is released
  std::vector<T*> p;
  std::vector<const T*> g;
  std::array<std::vector<T*>, S> s;
  std::vector<i64> n;
  std::vector<char> copy_g;  // g[i] overlaps p[i] or a state of parameter i
};

// The data of array obj after checking it: dtype dt, the shape of `like`, C-contiguous, aligned, writeable if
// written. like: the parameter whose shape the array must have (nullptr for the parameter itself).
template <typename T>
const char* checked_data(const py::handle& obj, const py::dtype& dt, const py::array* like, bool writeable,
                         const Name& name, std::vector<py::array>& keep) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(name.str() + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  // identity first: NumPy's builtin descriptors are singletons, and equal() goes through NumPy's casting
  // machinery (with the OpenMP bypass of small arrays in cpu/optim.cpp, this took one call on 16 one-element
  // parameters from 23.6 us to 2.2 us)
  if (!a.dtype().is(dt) && !a.dtype().equal(dt))
    throw py::type_error(name.str() + ": dtype " + std::string(py::str(a.dtype())) + ", expected " +
                         std::string(py::str(dt)));
  if (like != nullptr) {
    bool same = a.ndim() == like->ndim();
    for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == like->shape(d);
    if (!same)
      throw py::value_error(name.str() + ": shape " + shape_str(a) + ", expected " + shape_str(*like) +
                            " (the shape of " + Name{"params", name.i, name.keys}.str() + ")");
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name.str() + ": array must be C-contiguous");
  if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
    throw py::value_error(name.str() + ": array data is not aligned");
  if (writeable && !a.writeable()) throw py::value_error(name.str() + ": array is read-only");
  keep.push_back(a);
  return static_cast<const char*>(a.data());
}

template <typename T, int S>
Batch<T, S> collect(const py::list& p, const py::list& g, const std::array<py::list, S>& s,
                    const std::array<const char*, S>& s_names, const py::object& keys) {
  const std::size_t count = p.size();
  if (g.size() != count)
    throw py::value_error("grads: " + std::to_string(g.size()) + " arrays for " + std::to_string(count) +
                          " parameters");
  for (int j = 0; j < S; ++j)
    if (s[j].size() != count)
      throw py::value_error(std::string(s_names[j]) + ": " + std::to_string(s[j].size()) + " arrays for " +
                            std::to_string(count) + " parameters");
  const py::dtype dt = dtype_of<T>();
  Batch<T, S> b;
  b.keep.reserve(count * (2 + S));
  for (std::size_t i = 0; i < count; ++i) {
    const Name pname{"params", i, keys};
    if (!py::isinstance<py::array>(p[i])) throw py::type_error(pname.str() + ": expected a NumPy array");
    const py::array pa = py::reinterpret_borrow<py::array>(p[i]);
    const i64 n = static_cast<i64>(pa.size());
    const std::int64_t bytes = checked_mul(n, static_cast<i64>(sizeof(T)), "params");
    std::array<Span, 1 + S> out;  // p and the state arrays: written, must be disjoint
    const char* pd = checked_data<T>(p[i], dt, nullptr, true, pname, b.keep);
    out[0] = {pd, pd + bytes};
    for (int j = 0; j < S; ++j) {
      const char* sd = checked_data<T>(s[j][i], dt, &pa, true, Name{s_names[j], i, keys}, b.keep);
      out[1 + j] = {sd, sd + bytes};
      for (int k = 0; k <= j; ++k)
        if (out[1 + j].overlaps(out[k]))
          throw py::value_error(Name{s_names[j], i, keys}.str() + ": shares memory with " +
                                Name{k == 0 ? "params" : s_names[k - 1], i, keys}.str());
    }
    const char* gd = checked_data<T>(g[i], dt, &pa, false, Name{"grads", i, keys}, b.keep);
    const Span gs{gd, gd + bytes};
    char copy = 0;
    for (const Span& o : out) copy |= gs.overlaps(o) ? 1 : 0;
    b.p.push_back(reinterpret_cast<T*>(const_cast<char*>(pd)));
    b.g.push_back(reinterpret_cast<const T*>(gd));
    for (int j = 0; j < S; ++j) b.s[j].push_back(reinterpret_cast<T*>(const_cast<char*>(out[1 + j].lo)));
    b.n.push_back(n);
    b.copy_g.push_back(copy);
  }
  return b;
}

// Runs kernel(i, g) for every parameter with the GIL released, g being g[i] or a private copy of it.
template <typename T, int S, typename K>
void run(const Batch<T, S>& b, K&& kernel) {
  py::gil_scoped_release release;
  std::vector<T> tmp;
  for (std::size_t i = 0; i < b.p.size(); ++i) {
    const T* g = b.g[i];
    if (b.copy_g[i]) {
      tmp.assign(g, g + b.n[i]);
      g = tmp.data();
    }
    kernel(i, g);
  }
}

template <typename T>
void sgd_update_py(py::list p, py::list g, double lr, double weight_decay, py::object keys) {
  auto b = collect<T, 0>(p, g, {}, {}, keys);
  run(b, [&](std::size_t i, const T* gi) { cpu::sgd_update<T>(b.p[i], gi, b.n[i], lr, weight_decay); });
}

template <typename T>
void momentum_update_py(py::list p, py::list g, py::list v, double lr, double momentum, double weight_decay,
                        py::object keys) {
  auto b = collect<T, 1>(p, g, {v}, {"v"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::momentum_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, momentum, weight_decay);
  });
}

template <typename T>
void nesterov_update_py(py::list p, py::list g, py::list v, double lr, double momentum, double weight_decay,
                        py::object keys) {
  auto b = collect<T, 1>(p, g, {v}, {"v"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::nesterov_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, momentum, weight_decay);
  });
}

template <typename T>
void adagrad_update_py(py::list p, py::list g, py::list h, double lr, double eps, double weight_decay,
                       py::object keys) {
  auto b = collect<T, 1>(p, g, {h}, {"h"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::adagrad_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, eps, weight_decay);
  });
}

template <typename T>
void rmsprop_update_py(py::list p, py::list g, py::list h, double lr, double decay_rate, double eps,
                       double weight_decay, py::object keys) {
  auto b = collect<T, 1>(p, g, {h}, {"h"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::rmsprop_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, decay_rate, eps, weight_decay);
  });
}

template <typename T>
void adam_update_py(py::list p, py::list g, py::list m, py::list v, double lr_t, double beta1, double beta2,
                    double eps, double weight_decay, py::object keys) {
  auto b = collect<T, 2>(p, g, {m, v}, {"m", "v"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::adam_update<T>(b.p[i], gi, b.s[0][i], b.s[1][i], b.n[i], lr_t, beta1, beta2, eps, weight_decay);
  });
}

template <typename T>
void adadelta_update_py(py::list p, py::list g, py::list h, py::list d, double lr, double rho, double eps,
                        double weight_decay, py::object keys) {
  auto b = collect<T, 2>(p, g, {h, d}, {"h", "d"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::adadelta_update<T>(b.p[i], gi, b.s[0][i], b.s[1][i], b.n[i], lr, rho, eps, weight_decay);
  });
}

template <typename T>
void keras_nesterov_update_py(py::list p, py::list g, py::list v, double lr, double momentum, double weight_decay,
                              py::object keys) {
  auto b = collect<T, 1>(p, g, {v}, {"v"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::keras_nesterov_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, momentum, weight_decay);
  });
}

template <typename T>
void keras_adagrad_update_py(py::list p, py::list g, py::list h, double lr, double eps, double weight_decay,
                             py::object keys) {
  auto b = collect<T, 1>(p, g, {h}, {"h"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::keras_adagrad_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, eps, weight_decay);
  });
}

template <typename T>
void keras_rmsprop_update_py(py::list p, py::list g, py::list h, double lr, double rho, double eps,
                             double weight_decay, py::object keys) {
  auto b = collect<T, 1>(p, g, {h}, {"h"}, keys);
  run(b, [&](std::size_t i, const T* gi) {
    cpu::keras_rmsprop_update<T>(b.p[i], gi, b.s[0][i], b.n[i], lr, rho, eps, weight_decay);
  });
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("optim_variant", [] { return std::string(cpu::optim_variant()); },
        "The optimizer kernel variant in use, 'avx2' or 'baseline' (follows cpu_isa()).");
  FC_DEF_ALL(m, "sgd_update", sgd_update_py, "SGD in place, every parameter i: p[i] -= lr * g[i].",
             py::arg("p"), py::arg("g"), py::arg("lr"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "momentum_update", momentum_update_py,
             "Momentum in place: v = momentum*v - lr*g; p += v.", py::arg("p"), py::arg("g"), py::arg("v"),
             py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "nesterov_update", nesterov_update_py,
             "Nesterov (book form) in place: v = momentum*v - lr*g; p += momentum**2*v - (1+momentum)*lr*g.",
             py::arg("p"), py::arg("g"), py::arg("v"), py::arg("lr"), py::arg("momentum"),
             py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "adagrad_update", adagrad_update_py,
             "AdaGrad in place: h += g*g; p -= lr*g / (sqrt(h) + eps).", py::arg("p"), py::arg("g"),
             py::arg("h"), py::arg("lr"), py::arg("eps"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "rmsprop_update", rmsprop_update_py,
             "RMSprop in place: h = decay_rate*h + (1-decay_rate)*g*g; p -= lr*g / (sqrt(h) + eps).",
             py::arg("p"), py::arg("g"), py::arg("h"), py::arg("lr"), py::arg("decay_rate"), py::arg("eps"),
             py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "adam_update", adam_update_py,
             "Adam (book form, bias correction in lr_t) in place: m += (1-beta1)*(g-m); "
             "v += (1-beta2)*(g*g-v); p -= lr_t*m / (sqrt(v) + eps).",
             py::arg("p"), py::arg("g"), py::arg("m"), py::arg("v"), py::arg("lr_t"), py::arg("beta1"),
             py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "adadelta_update", adadelta_update_py,
             "Adadelta in place: h = rho*h + (1-rho)*g*g; dx = sqrt(d+eps)/sqrt(h+eps)*g; "
             "d = rho*d + (1-rho)*dx*dx; p -= lr*dx.",
             py::arg("p"), py::arg("g"), py::arg("h"), py::arg("d"), py::arg("lr"), py::arg("rho"),
             py::arg("eps"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "keras_nesterov_update", keras_nesterov_update_py,
             "Keras' Nesterov SGD in place: v = v*momentum - g*lr; p += v*momentum - g*lr.", py::arg("p"),
             py::arg("g"), py::arg("v"), py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"),
             py::arg("keys") = py::none());
  FC_DEF_ALL(m, "keras_adagrad_update", keras_adagrad_update_py,
             "Keras' Adagrad in place: h += g*g; p -= lr*g / sqrt(h + eps).", py::arg("p"), py::arg("g"),
             py::arg("h"), py::arg("lr"), py::arg("eps"), py::arg("weight_decay"), py::arg("keys") = py::none());
  FC_DEF_ALL(m, "keras_rmsprop_update", keras_rmsprop_update_py,
             "Keras' RMSprop in place: h = rho*h + (1-rho)*(g*g); p -= lr*g / sqrt(h + eps).", py::arg("p"),
             py::arg("g"), py::arg("h"), py::arg("lr"), py::arg("rho"), py::arg("eps"), py::arg("weight_decay"),
             py::arg("keys") = py::none());
}

}  // namespace fastconv::bind
