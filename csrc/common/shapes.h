// shapes.h: shape arithmetic for convolution and pooling, usable on host and (later) device.
// Conv letters: x is (N, C, H, W), filters (FN, C, FH, FW), output (N, FN, OH, OW).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FC_HD __host__ __device__
#else
#define FC_HD
#endif

namespace fastconv {

// Output extent of a sliding window: floor((in + 2*pad - k) / stride) + 1, the one place C++ computes it
// (Python: fastconv._checks.conv_output_size). Caller guarantees in + 2*pad >= k and stride > 0 (checked in
// ops.py and again by check_geom, common/geom.h).
FC_HD inline std::int64_t conv_out_size(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}

// Geometry of one convolution or pooling window pass, shared by im2col, conv and pool.
struct ConvGeom {
  std::int64_t N, C, H, W;     // input
  std::int64_t FH, FW;         // window
  std::int64_t stride, pad;
  std::int64_t OH, OW;         // output

  // the book's column matrix (im2col): (N*OH*OW, C*FH*FW)
  FC_HD std::int64_t col_rows() const { return N * OH * OW; }
  FC_HD std::int64_t col_cols() const { return C * FH * FW; }
  // pixels of one (n, c) plane of the input (pooling's argmax indexes them)
  FC_HD std::int64_t plane() const { return H * W; }
};

inline ConvGeom make_geom(std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t FH,
                          std::int64_t FW, std::int64_t stride, std::int64_t pad) {
  return ConvGeom{N, C, H, W, FH, FW, stride, pad, conv_out_size(H, FH, stride, pad),
                  conv_out_size(W, FW, stride, pad)};
}

}  // namespace fastconv
