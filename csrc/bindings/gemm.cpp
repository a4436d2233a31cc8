// bindings/gemm.cpp: gemm_{f32,f64,f16,bf16,f64_as_f32,f64_as_f16,f64_as_bf16}(a, b, out, trans_a, trans_b,
// alpha, beta).
#include "bindings/bind_util.h"
#include "cpu/gemm/gemm.h"
#include "cpu/threads.h"

namespace fastconv::bind {

template <typename T>
void gemm_py(py::array a, py::array b, py::array out, bool trans_a, bool trans_b, double alpha, double beta) {
  const std::int64_t a0 = dim(a, "a", 2, 0), a1 = dim(a, "a", 2, 1);
  const std::int64_t b0 = dim(b, "b", 2, 0), b1 = dim(b, "b", 2, 1);
  const std::int64_t M = trans_a ? a1 : a0, K = trans_a ? a0 : a1;
  const std::int64_t Kb = trans_b ? b1 : b0, N = trans_b ? b0 : b1;
  if (K != Kb)
    throw py::value_error("b: shape " + shape_str(b) + " does not match a: shape " + shape_str(a) +
                          " (inner dimensions " + std::to_string(K) + " and " + std::to_string(Kb) + ")");
  const T* pa = in_ptr<T>(a, "a", {a0, a1});
  const T* pb = in_ptr<T>(b, "b", {b0, b1});
  T* pc = out_ptr<T>(out, "out", {M, N});
  const std::int64_t rsa = trans_a ? 1 : a1, csa = trans_a ? a1 : 1;
  const std::int64_t rsb = trans_b ? 1 : b1, csb = trans_b ? b1 : 1;
  py::gil_scoped_release nogil;
  cpu::gemm<T>(M, N, K, compute_t<T>(alpha), pa, rsa, csa, pb, rsb, csb, compute_t<T>(beta), pc, N,
                cpu::num_threads());
}

void bind_gemm(py::module_& m) {
  FC_DEF_FLOATS(m, "gemm", gemm_py,
                "out = alpha * op(a) @ op(b) + beta * out, op = transpose when trans_* is set. C-contiguous 2-D "
                "arrays of one dtype; out is (M, N).",
                py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false, py::arg("trans_b") = false,
                py::arg("alpha") = 1.0, py::arg("beta") = 0.0);
  FC_DEF_HALVES(m, "gemm", gemm_py,
                "The same for float16 / bfloat16 arrays: float32 accumulation, one rounding per element of out.",
                py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false, py::arg("trans_b") = false,
                py::arg("alpha") = 1.0, py::arg("beta") = 0.0);
  FC_DEF_POLICY(m, "gemm", gemm_py,
                "The same for float64 arrays computed in float32 / float16 / bfloat16 (the compute policy).",
                py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false, py::arg("trans_b") = false,
                py::arg("alpha") = 1.0, py::arg("beta") = 0.0);
}

}  // namespace fastconv::bind
