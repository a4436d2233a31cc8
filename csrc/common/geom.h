// geom.h: the one check of a sliding-window geometry, on the host, shared by every binding module (CPU now,
// CUDA later): convolution and im2col / col2im (filter windows) and pooling (pool windows) all get their
// ConvGeom from check_geom. It rejects what ops.py rejects first (fastconv/_checks.py) -- non-positive sizes,
// strides or dilations, negative padding, window parameters above 2**40, a window larger than the padded
// input, sizes whose products overflow int64 -- with a std::invalid_argument (ValueError in Python) that
// names the argument. Padding is per side (top, bottom, left, right), stride and dilation per axis.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/check.h"
#include "common/shapes.h"

namespace fastconv {

enum class WindowKind { filter, pool };

// Window parameters (filter and pool sizes, strides, pads, dilations) above this are rejected before any
// arithmetic on them can overflow (H + pt + pb, a window's area, dilation * (FH - 1)); ops.py has the same
// limit.
constexpr std::int64_t kMaxWindowParam = std::int64_t(1) << 40;

// A window as the bindings receive it: size, stride (sh, sw), padding (top, bottom, left, right), dilation
// (dh, dw).
struct WindowArgs {
  std::int64_t FH, FW;
  std::array<std::int64_t, 2> stride;
  std::array<std::int64_t, 4> pad;
  std::array<std::int64_t, 2> dilation;
};

// The geometry of a window over an input x_name of (N, C, H, W), checked. Pooling also needs each pad < the
// window on its axis (a window of padding only would have no maximum), no dilation and H*W < 2**31 (int32
// argmax).
inline ConvGeom check_geom(WindowKind kind, const char* x_name, std::int64_t N, std::int64_t C, std::int64_t H,
                           std::int64_t W, const WindowArgs& a) {
  const bool pool = kind == WindowKind::pool;
  const char* h_name = pool ? "pool_h" : "filter_h";
  const char* w_name = pool ? "pool_w" : "filter_w";
  const std::int64_t FH = a.FH, FW = a.FW, sh = a.stride[0], sw = a.stride[1], dh = a.dilation[0],
                     dw = a.dilation[1], pt = a.pad[0], pb = a.pad[1], pl = a.pad[2], pr = a.pad[3];
  FC_CHECK(FH > 0, h_name << " must be > 0, got " << FH);
  FC_CHECK(FW > 0, w_name << " must be > 0, got " << FW);
  FC_CHECK(sh > 0 && sw > 0, "stride must be > 0, got (" << sh << ", " << sw << ")");
  FC_CHECK(dh > 0 && dw > 0, "dilation must be > 0, got (" << dh << ", " << dw << ")");
  FC_CHECK(pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0,
           "pad must be >= 0, got (" << pt << ", " << pb << ", " << pl << ", " << pr << ")");
  if (pool) {
    FC_CHECK(dh == 1 && dw == 1, "dilation must be 1 for pooling, got (" << dh << ", " << dw << ")");
    FC_CHECK(pt < FH && pb < FH && pl < FW && pr < FW,
             "pad must be < pool_h (top, bottom) and < pool_w (left, right), got pad=("
                 << pt << ", " << pb << ", " << pl << ", " << pr << "), pool_h=" << FH << ", pool_w=" << FW);
  }
  struct Param {
    std::int64_t value;
    const char* name;
  };
  for (const Param& p : {Param{pt, "pad"}, Param{pb, "pad"}, Param{pl, "pad"}, Param{pr, "pad"},
                         Param{FH, h_name}, Param{FW, w_name}, Param{sh, "stride"}, Param{sw, "stride"},
                         Param{dh, "dilation"}, Param{dw, "dilation"}})
    FC_CHECK(p.value <= kMaxWindowParam, p.name << " is too large: " << p.value << " (limit 2**40)");
  checked_size(pool ? x_name : "conv sizes", N, C, H, W);
  if (pool) {
    FC_CHECK(H * W < (std::int64_t(1) << 31), x_name << ": shape (" << N << ", " << C << ", " << H << ", " << W
                                                       << ") has H*W >= 2^31, which an int32 argmax cannot index");
    checked_size("pool_h * pool_w", FH, FW);
  }
  // extent of the dilated window; every term <= 2**40, so the products and sums fit in int64
  const std::int64_t EH = dh * (FH - 1) + 1, EW = dw * (FW - 1) + 1;
  const std::int64_t HP = H + pt + pb, WP = W + pl + pr;  // padded input
  const bool fits = HP >= EH && WP >= EW;
  if (pool)
    FC_CHECK(fits, x_name << ": shape (" << N << ", " << C << ", " << H << ", " << W << ") with pad=(" << pt
                          << ", " << pb << ", " << pl << ", " << pr << ") is smaller than the window (" << FH
                          << ", " << FW << ")");
  else {
    const std::string dilated =
        dh == 1 && dw == 1 ? "" : " (dilated " + std::to_string(EH) + "x" + std::to_string(EW) + ")";
    FC_CHECK(fits, "filter " << FH << "x" << FW << dilated << " is larger than the padded input " << HP << "x"
                             << WP);
  }
  const ConvGeom g = make_geom(N, C, H, W, FH, FW, sh, sw, pt, pb, pl, pr, dh, dw);
  if (pool)
    checked_size("output", N, C, g.OH, g.OW);
  else
    checked_size("conv sizes", N, g.OH, g.OW, C, FH, FW);
  return g;
}

// A convolution of x (N, C, H, W) with `groups` groups of FN filters: C and FN must split into groups.
// Returns the channels per group, C / groups (W's second extent, checked with W's shape).
inline std::int64_t check_groups(std::int64_t C, std::int64_t FN, std::int64_t groups) {
  FC_CHECK(groups >= 1, "groups must be >= 1, got " << groups);
  FC_CHECK(C % groups == 0, "groups: " << groups << " does not divide the " << C << " input channels of x");
  FC_CHECK(FN % groups == 0, "groups: " << groups << " does not divide the " << FN << " filters of W");
  return C / groups;
}

// The geometry of a transposed convolution of x (N, C_in, H, W) into y (N, C_out, OH, OW): the convolution
// of y with the same window, which must give back x's H x W (else y's shape does not belong to x).
inline ConvGeom check_deconv_geom(std::int64_t N, std::int64_t C_out, std::int64_t OH, std::int64_t OW,
                                  std::int64_t H, std::int64_t W, const WindowArgs& a) {
  const ConvGeom g = check_geom(WindowKind::filter, "y", N, C_out, OH, OW, a);
  FC_CHECK(g.OH == H && g.OW == W, "y: " << OH << "x" << OW << " output does not belong to an input of " << H
                                         << "x" << W << " (the convolution it transposes gives " << g.OH << "x"
                                         << g.OW << ")");
  return g;
}

// The book's geometry: one stride, one pad on every side, no dilation (im2col / col2im of fastconv.util).
inline ConvGeom check_geom(WindowKind kind, const char* x_name, std::int64_t N, std::int64_t C, std::int64_t H,
                           std::int64_t W, std::int64_t FH, std::int64_t FW, std::int64_t stride,
                           std::int64_t pad) {
  const WindowArgs a{FH, FW, {stride, stride}, {pad, pad, pad, pad}, {1, 1}};
  return check_geom(kind, x_name, N, C, H, W, a);
}

}  // namespace fastconv
