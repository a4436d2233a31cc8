// shapes.h: shape arithmetic for convolution and pooling, usable on host and (later) device.
// Conv letters: x is (N, C, H, W), filters (FN, C, FH, FW), output (N, FN, OH, OW). A window has its own
// stride per axis (sh, sw), dilation per axis (dh, dw: taps dh rows apart) and padding per side (top pt,
// bottom pb, left pl, right pr); the book's geometry is sh == sw, every pad equal, dh == dw == 1.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FC_HD __host__ __device__
#else
#define FC_HD
#endif

namespace fastconv {

// Output extent of a sliding window: floor((in + pad_lo + pad_hi - dil*(k - 1) - 1) / stride) + 1, the one
// place C++ computes it (Python: fastconv._checks.window). Caller guarantees the padded input holds the dilated
// window and stride > 0 (checked in ops.py and again by check_geom, common/geom.h).
FC_HD inline std::int64_t conv_out_size(std::int64_t in, std::int64_t k, std::int64_t stride,
                                        std::int64_t pad_lo, std::int64_t pad_hi, std::int64_t dil = 1) {
  return (in + pad_lo + pad_hi - dil * (k - 1) - 1) / stride + 1;
}

// Geometry of one convolution or pooling window pass, shared by im2col, conv and pool. Tap (fh, fw) of
// output (oh, ow) reads input (oh*sh - pt + fh*dh, ow*sw - pl + fw*dw); outside [0, H) x [0, W) is padding.
struct ConvGeom {
  std::int64_t N, C, H, W;     // input
  std::int64_t FH, FW;         // window
  std::int64_t sh, sw;         // stride
  std::int64_t pt, pb, pl, pr; // padding: top, bottom, left, right
  std::int64_t dh, dw;         // dilation
  std::int64_t OH, OW;         // output

  // the book's column matrix (im2col): (N*OH*OW, C*FH*FW)
  FC_HD std::int64_t col_rows() const { return N * OH * OW; }
  FC_HD std::int64_t col_cols() const { return C * FH * FW; }
  // pixels of one (n, c) plane of the input (pooling's argmax indexes them)
  FC_HD std::int64_t plane() const { return H * W; }
  // the book's geometry: one stride, one pad on every side, no dilation (the layers' original fast paths)
  FC_HD bool symmetric() const { return sh == sw && pt == pb && pt == pl && pt == pr && dh == 1 && dw == 1; }
};

inline ConvGeom make_geom(std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t FH,
                          std::int64_t FW, std::int64_t sh, std::int64_t sw, std::int64_t pt, std::int64_t pb,
                          std::int64_t pl, std::int64_t pr, std::int64_t dh, std::int64_t dw) {
  return ConvGeom{N,  C,  H,  W,  FH, FW, sh, sw, pt, pb, pl, pr, dh, dw,
                  conv_out_size(H, FH, sh, pt, pb, dh), conv_out_size(W, FW, sw, pl, pr, dw)};
}

// The book's geometry: stride and pad the same on both axes and every side, no dilation.
inline ConvGeom make_geom(std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t FH,
                          std::int64_t FW, std::int64_t stride, std::int64_t pad) {
  return make_geom(N, C, H, W, FH, FW, stride, stride, pad, pad, pad, pad, 1, 1);
}

}  // namespace fastconv
