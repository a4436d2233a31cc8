// geom.h: the one check of a sliding-window geometry, on the host, shared by every binding module (CPU now,
// CUDA later): convolution and im2col / col2im (filter windows) and pooling (pool windows) all get their
// ConvGeom from check_geom. It rejects what ops.py rejects first (fastconv/_checks.py) -- non-positive sizes,
// negative pad, window parameters above 2**40, a window larger than the padded input, sizes whose products
// overflow int64 -- with a std::invalid_argument (ValueError in Python) that names the argument.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "common/check.h"
#include "common/shapes.h"

namespace fastconv {

enum class WindowKind { filter, pool };

// Window parameters (filter and pool sizes, stride, pad) above this are rejected before any arithmetic on them
// can overflow (H + 2*pad, a window's area); ops.py has the same limit.
constexpr std::int64_t kMaxWindowParam = std::int64_t(1) << 40;

// The geometry of a window of FH x FW, stride and pad over an input x_name of (N, C, H, W), checked. Pooling
// also needs pad < the window (a window of padding only would have no maximum) and H*W < 2**31 (int32 argmax).
inline ConvGeom check_geom(WindowKind kind, const char* x_name, std::int64_t N, std::int64_t C, std::int64_t H,
                           std::int64_t W, std::int64_t FH, std::int64_t FW, std::int64_t stride,
                           std::int64_t pad) {
  const bool pool = kind == WindowKind::pool;
  const char* h_name = pool ? "pool_h" : "filter_h";
  const char* w_name = pool ? "pool_w" : "filter_w";
  FC_CHECK(FH > 0, h_name << " must be > 0, got " << FH);
  FC_CHECK(FW > 0, w_name << " must be > 0, got " << FW);
  FC_CHECK(stride > 0, "stride must be > 0, got " << stride);
  FC_CHECK(pad >= 0, "pad must be >= 0, got " << pad);
  if (pool)
    FC_CHECK(pad < FH && pad < FW,
             "pad must be < pool_h and < pool_w, got pad=" << pad << ", pool_h=" << FH << ", pool_w=" << FW);
  struct Param {
    std::int64_t value;
    const char* name;
  };
  for (const Param& p : {Param{pad, "pad"}, Param{FH, h_name}, Param{FW, w_name}, Param{stride, "stride"}})
    FC_CHECK(p.value <= kMaxWindowParam, p.name << " is too large: " << p.value << " (limit 2**40)");
  checked_size(pool ? x_name : "conv sizes", N, C, H, W);
  if (pool) {
    FC_CHECK(H * W < (std::int64_t(1) << 31), x_name << ": shape (" << N << ", " << C << ", " << H << ", " << W
                                                       << ") has H*W >= 2^31, which an int32 argmax cannot index");
    checked_size("pool_h * pool_w", FH, FW);
  }
  const bool fits = H + 2 * pad >= FH && W + 2 * pad >= FW;  // H, W: real extents; pad <= 2**40
  if (pool)
    FC_CHECK(fits, x_name << ": shape (" << N << ", " << C << ", " << H << ", " << W << ") with pad=" << pad
                          << " is smaller than the window (" << FH << ", " << FW << ")");
  else
    FC_CHECK(fits, "filter " << FH << "x" << FW << " is larger than the padded input " << H + 2 * pad << "x"
                             << W + 2 * pad);
  const ConvGeom g = make_geom(N, C, H, W, FH, FW, stride, pad);
  if (pool)
    checked_size("output", N, C, g.OH, g.OW);
  else
    checked_size("conv sizes", N, g.OH, g.OW, C, FH, FW);
  return g;
}

}  // namespace fastconv
