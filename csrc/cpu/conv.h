// conv.h: 2-D convolution (cross-correlation, as in the book), forward and backward; grouped, depthwise and
// transposed convolutions on the same kernels. x (N, C, H, W), w (FN, C, FH, FW), b (FN,) or null (no bias),
// out/dout (N, FN, OH, OW); the geometry (strides, per-side padding, dilation) is g's.
#pragma once
#include "common/dtype.h"
#include "common/shapes.h"
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

// relu: out = relu(conv(x, w) + b) in the same pass, bit for bit relu_forward of the plain result (the book's
// Convolution followed by Relu, fused by the models: the ReLU costs no pass over memory of its own).
template <typename T>
void conv_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                  bool relu = false);

// dx (N, C, H, W), dw (FN, C, FH, FW), db (FN,) are overwritten; dx == nullptr skips the input gradient (a
// network's first layer: nothing reads it).
template <typename T>
void conv_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g, index_t FN,
                   int nthreads);

// dx (N, C, H, W) = the input gradient of conv_forward alone (+ bias[c] per channel unless bias is null):
// the transposed convolution's forward.
template <typename T>
void conv_backward_data(const T* w, const T* dout, const T* bias, T* dx, const ConvGeom& g, index_t FN,
                        int nthreads);

// out (C,) = sum of y (N, C, HW) over images and pixels, in an order fixed by the shape (bias gradients).
template <typename T>
void channel_sums(const T* y, index_t N, index_t C, index_t HW, T* out, int nthreads);

// Grouped convolution, 1 < groups < C: w (FN, C/groups, FH, FW), filter f sees the channels of group
// f / (FN/groups). b may be null (no bias); dx may be null (no input gradient).
template <typename T>
void conv_forward_grouped(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN,
                          index_t groups, int nthreads, bool relu = false);
template <typename T>
void conv_backward_grouped(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                           index_t FN, index_t groups, int nthreads);

// Any group count: groups == 1 is conv_forward, groups == C > 1 the depthwise kernel, anything else the
// grouped convolution. w (FN, C/groups, FH, FW).
template <typename T>
void conv_forward_groups(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN,
                         index_t groups, int nthreads, bool relu);
template <typename T>
void conv_backward_groups(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                          index_t FN, index_t groups, int nthreads);

// Depthwise convolution (groups == C): w (FN, 1, FH, FW) with FN = C*M, filter f reads channel f / M. A direct
// kernel (conv_depthwise.cpp): threads over the N*FN planes, SIMD along the output row.
template <typename T>
void depthwise_forward(const T* x, const T* w, const T* b, T* out, const ConvGeom& g, index_t FN, int nthreads,
                       bool relu = false);
template <typename T>
void depthwise_backward(const T* x, const T* w, const T* dout, T* dx, T* dw, T* db, const ConvGeom& g,
                        index_t FN, int nthreads);

// Transposed convolution of x (N, C_in, H, W) with w (C_in, C_out, FH, FW) into y (N, C_out, OH', OW'): g is
// the geometry of the convolution it transposes, whose input is y (g.C = C_out, g.H = OH') and whose output
// is x (g.OH = H). Forward: that convolution's input gradient (+ b per channel, b may be null); backward:
// dx = conv(dy, w), dW = its weight gradient, db = sums of dy. dx may be null.
template <typename T>
void deconv_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, index_t C_in, int nthreads);
template <typename T>
void deconv_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const ConvGeom& g, index_t C_in,
                     int nthreads);

// f16 / bf16 and the compute policy's f64_as_* (conv_half.cpp): the float kernels above on per-chunk (forward)
// or per-slot (backward) float copies, float32 accumulation, one rounding per stored value; dW and db summed
// over the slots in order.
#define FC_CONV_HALF_DECL_(S, SUF)                                                                              \
  template <>                                                                                                   \
  void conv_forward_groups<S>(const S*, const S*, const S*, S*, const ConvGeom&, index_t, index_t, int, bool);  \
  template <>                                                                                                   \
  void conv_backward_groups<S>(const S*, const S*, const S*, S*, S*, S*, const ConvGeom&, index_t, index_t, int); \
  template <>                                                                                                   \
  void deconv_forward<S>(const S*, const S*, const S*, S*, const ConvGeom&, index_t, int);                      \
  template <>                                                                                                   \
  void deconv_backward<S>(const S*, const S*, const S*, S*, S*, S*, const ConvGeom&, index_t, int);
FC_HALF_TYPES(FC_CONV_HALF_DECL_)
FC_POLICY_TYPES(FC_CONV_HALF_DECL_)  // the compute policy's float64 types, same staging (common/policy.h)
#undef FC_CONV_HALF_DECL_

// The weight gradient is summed in order (image by image, or in groups of images whose count the geometry
// fixes) into min(N, CONV_GRAD_SLOTS) slots of consecutive images (slot s: images [N*s/S, N*(s+1)/S); one
// partial dW per slot), and the slots are added in order: all fixed by N and the geometry alone, so dW and db
// are bit-identical for any number of threads.
constexpr index_t CONV_GRAD_SLOTS = 16;
// The slot count conv_backward uses for N images: min(N, CONV_GRAD_SLOTS), or 1 on a thread inside a
// OneGradSlot scope. conv_half.cpp's staged backward calls the float kernel once per slot of its own (fixed
// by N, as above) and opens the scope around it, so that each of its slots is summed as one slot rather than
// split again into single images (each a partial dW written back and added: 1.3x the float32 time for
// 64 -> 64 channels on 8x8, measured).
index_t conv_grad_slots(index_t N);
struct OneGradSlot {
  OneGradSlot();
  ~OneGradSlot();
  OneGradSlot(const OneGradSlot&) = delete;
  OneGradSlot& operator=(const OneGradSlot&) = delete;
  bool saved_;
};
// Weight gradient: a slot's images go through the rows kernel in batches of up to
// CONV_DW_MAX_IMAGES whose padded images and dout^T fit CONV_DW_BYTES (about half an L2), so C is written
// back once per batch rather than once per image (small images: 8x8 grids are 80 k-steps per image).
constexpr index_t CONV_DW_MAX_IMAGES = 8;
constexpr index_t CONV_DW_BYTES = 256 * 1024;
// Columns of the grouped GEMMs of the convolution (the 1x1 forward and the strided conv_backward_data):
// images are taken together until their pixels reach this many (about eight 32-wide slivers), so small images
// (7x7: 49) still make one wide GEMM.
constexpr index_t CONV_GROUP_COLS = 256;

}  // namespace fastconv::cpu
