// bindings/zeropad.cpp: zeropad_{f32,f64,f16,bf16} (ZeroPadding forward and Cropping backward with offsets
// >= 0, Cropping forward and ZeroPadding backward with offsets <= 0).
#include "bindings/bind_util.h"
#include "common/check.h"
#include "common/geom.h"
#include "cpu/threads.h"
#include "cpu/zeropad.h"

namespace fastconv::bind {

template <typename T>
void zeropad_py(py::array x, py::array out, std::int64_t top, std::int64_t left) {
  const std::int64_t N = dim(x, "x", 4, 0), C = dim(x, "x", 4, 1), H = dim(x, "x", 4, 2), W = dim(x, "x", 4, 3);
  const std::int64_t OH = dim(out, "out", 4, 2), OW = dim(out, "out", 4, 3);
  FC_CHECK(top >= -kMaxWindowParam && top <= kMaxWindowParam, "top is too large: " << top << " (limit 2**40)");
  FC_CHECK(left >= -kMaxWindowParam && left <= kMaxWindowParam, "left is too large: " << left << " (limit 2**40)");
  const T* px = in_ptr<T>(x, "x", {N, C, H, W});
  T* po = out_ptr<T>(out, "out", {N, C, OH, OW});
  py::gil_scoped_release nogil;
  cpu::zeropad<T>(px, po, N, C, H, W, OH, OW, top, left, cpu::num_threads());
}

void bind_zeropad(py::module_& m) {
  FC_DEF_ALL(m, "zeropad", zeropad_py,
             "out (N, C, OH, OW)[h, w] = x (N, C, H, W)[h - top, w - left] where inside x, else 0 (pads with "
             "offsets >= 0, crops with offsets <= 0). Overwrites out.",
             py::arg("x"), py::arg("out"), py::arg("top"), py::arg("left"));
}

}  // namespace fastconv::bind
