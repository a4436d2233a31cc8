// pool_half.cpp: max and average pooling, forward and backward, for the 16-bit storage types (f16, bf16) on the
// float kernels of pool.cpp. Planes are independent, so the batch goes through in chunks of whole (n, c) planes
// (about kChunkFloats values of input): each chunk widened into a float buffer, the float kernel (threaded as
// usual) run on it as one image of `planes` channels, the result rounded once on the store. A max is one of its
// inputs (exact); average windows and the backward's overlapping windows sum in float32.
#include <algorithm>

#include "common/half.h"
#include "cpu/half_convert.h"
#include "cpu/pool.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

constexpr std::int64_t kChunkFloats = 1 << 20;  // 4 MiB of float input per chunk: many planes, bounded scratch

// Calls f(first plane, planes in chunk, geometry of the chunk) over the N*C planes of g.
template <typename F>
void by_plane_chunks(const ConvGeom& g, F&& f) {
  const std::int64_t planes = g.N * g.C, per = std::max<std::int64_t>(1, kChunkFloats / std::max<std::int64_t>(
                                                                            1, std::max(g.plane(), g.OH * g.OW)));
  for (std::int64_t p0 = 0; p0 < planes; p0 += per) {
    ConvGeom c = g;
    c.N = 1;
    c.C = std::min(per, planes - p0);
    f(p0, c);
  }
}

}  // namespace

#define FC_POOL_HALF_(S, SUF)                                                                                      \
  template <>                                                                                                      \
  void maxpool_forward<S>(const S* x, S* out, std::int32_t* argmax, const ConvGeom& g) {                          \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, [&](std::int64_t p0, const ConvGeom& c) {                                                  \
      Scratch<float> xf(static_cast<std::size_t>(c.C * in)), of(static_cast<std::size_t>(c.C * on));             \
      widen(x + p0 * in, xf.data(), c.C * in);                                                                     \
      maxpool_forward<float>(xf.data(), of.data(), argmax ? argmax + p0 * on : nullptr, c);                       \
      narrow(of.data(), out + p0 * on, c.C * on);                                                                  \
    });                                                                                                            \
  }                                                                                                                \
  template <>                                                                                                      \
  std::int64_t maxpool_backward<S>(const S* dout, const std::int32_t* argmax, S* dx, const ConvGeom& g) {         \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    std::int64_t bad = -1;                                                                                         \
    by_plane_chunks(g, [&](std::int64_t p0, const ConvGeom& c) {                                                  \
      Scratch<float> df(static_cast<std::size_t>(c.C * on)), dxf(static_cast<std::size_t>(c.C * in));            \
      widen(dout + p0 * on, df.data(), c.C * on);                                                                  \
      const std::int64_t b = maxpool_backward<float>(df.data(), argmax + p0 * on, dxf.data(), c);                  \
      if (b >= 0 && bad < 0) bad = p0 * on + b;                                                                    \
      narrow(dxf.data(), dx + p0 * in, c.C * in);                                                                  \
    });                                                                                                            \
    return bad;                                                                                                    \
  }                                                                                                                \
  template <>                                                                                                      \
  void avgpool_forward<S>(const S* x, S* out, const ConvGeom& g) {                                                \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, [&](std::int64_t p0, const ConvGeom& c) {                                                  \
      Scratch<float> xf(static_cast<std::size_t>(c.C * in)), of(static_cast<std::size_t>(c.C * on));             \
      widen(x + p0 * in, xf.data(), c.C * in);                                                                     \
      avgpool_forward<float>(xf.data(), of.data(), c);                                                             \
      narrow(of.data(), out + p0 * on, c.C * on);                                                                  \
    });                                                                                                            \
  }                                                                                                                \
  template <>                                                                                                      \
  void avgpool_backward<S>(const S* dout, S* dx, const ConvGeom& g) {                                             \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, [&](std::int64_t p0, const ConvGeom& c) {                                                  \
      Scratch<float> df(static_cast<std::size_t>(c.C * on)), dxf(static_cast<std::size_t>(c.C * in));            \
      widen(dout + p0 * on, df.data(), c.C * on);                                                                  \
      avgpool_backward<float>(df.data(), dxf.data(), c);                                                           \
      narrow(dxf.data(), dx + p0 * in, c.C * in);                                                                  \
    });                                                                                                            \
  }
FC_HALF_TYPES(FC_POOL_HALF_)
#undef FC_POOL_HALF_

}  // namespace fastconv::cpu
