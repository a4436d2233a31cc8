// bindings/half.cpp: half_widen_{f16,bf16}(src, dst) and half_narrow_{f16,bf16}(src, dst), the row conversions
// of cpu/half_convert.h on 1-D arrays, on the ISA in use: exposed so tests check every path bit for bit
// against NumPy's float16 and ml_dtypes' bfloat16 casts.
#include "bindings/bind_util.h"
#include "cpu/half_convert.h"

namespace fastconv::bind {

template <typename S>
void half_widen_py(py::array src, py::array dst) {
  const std::int64_t n = dim(src, "src", 1, 0);
  const S* ps = in_ptr<S>(src, "src", {n});
  float* pd = out_ptr<float>(dst, "dst", {n});
  py::gil_scoped_release nogil;
  cpu::widen(ps, pd, n);
}

template <typename S>
void half_narrow_py(py::array src, py::array dst) {
  const std::int64_t n = dim(src, "src", 1, 0);
  const float* ps = in_ptr<float>(src, "src", {n});
  S* pd = out_ptr<S>(dst, "dst", {n});
  py::gil_scoped_release nogil;
  cpu::narrow(ps, pd, n);
}

void bind_half(py::module_& m) {
  FC_DEF_HALVES(m, "half_widen", half_widen_py, "dst (float32) = src (16-bit), exact.", py::arg("src"),
                py::arg("dst"));
  FC_DEF_HALVES(m, "half_narrow", half_narrow_py,
                "dst (16-bit) = src (float32) rounded to nearest, ties to even.", py::arg("src"), py::arg("dst"));
}

}  // namespace fastconv::bind
