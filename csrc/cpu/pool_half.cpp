// pool_half.cpp: max and average pooling, forward and backward, for the 16-bit storage types (f16, bf16) on
// the float kernels of pool.cpp. Planes are independent, so the batch goes through in chunks of whole (n, c)
// planes (about kChunkFloats values, in L2), the chunks spread over the threads: each chunk widened into the
// thread's float buffer, the float kernel run on it as one image of `planes` channels (on the calling thread:
// it is inside this parallel region), the result rounded once on the store. A max is one of its inputs
// (exact); average windows and the backward's overlapping windows sum in float32. Any split gives the same
// bits.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "common/half.h"
#include "cpu/half_convert.h"
#include "cpu/pool.h"
#include "cpu/threads.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

// 256 KiB of float input or output per chunk and thread. Whole-batch chunks (4 MiB, converted on one thread,
// then pooled by all) cost the bfloat16 DeepConvNet's pooling 1.4-2x the float32 time; measured there.
constexpr std::int64_t kChunkFloats = 1 << 16;
constexpr std::int64_t kParallelMin = 1 << 15;  // values below which the batch stays on the calling thread

// Calls f(first plane, geometry of the chunk (N = 1, C = its planes), in buffer, out buffer) over the N*C
// planes of g in chunks; in / on = values per plane of the kernel's input and output.
template <typename F>
void by_plane_chunks(const ConvGeom& g, std::int64_t in, std::int64_t on, F&& f) {
  const std::int64_t planes = g.N * g.C, per = std::max<std::int64_t>(1, kChunkFloats / std::max<std::int64_t>(
                                                                            1, std::max(in, on)));
  const std::int64_t chunks = (planes + per - 1) / per;
#pragma omp parallel num_threads(num_threads()) if (chunks > 1 && planes * (in + on) >= kParallelMin)
  {
    Scratch<float> a(static_cast<std::size_t>(per * in)), b(static_cast<std::size_t>(per * on));
#pragma omp for schedule(static)
    for (std::int64_t k = 0; k < chunks; ++k) {
      ConvGeom c = g;
      c.N = 1;
      c.C = std::min(per, planes - k * per);
      f(k * per, c, a.data(), b.data());
    }
  }
}

}  // namespace

#define FC_POOL_HALF_(S, SUF)                                                                                      \
  template <>                                                                                                      \
  void maxpool_forward<S>(const S* x, S* out, std::int32_t* argmax, const ConvGeom& g) {                          \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, in, on, [&](std::int64_t p0, const ConvGeom& c, float* xf, float* of) {                    \
      widen(x + p0 * in, xf, c.C * in);                                                                            \
      maxpool_forward<float>(xf, of, argmax ? argmax + p0 * on : nullptr, c);                                      \
      narrow(of, out + p0 * on, c.C * on);                                                                         \
    });                                                                                                            \
  }                                                                                                                \
  template <>                                                                                                      \
  std::int64_t maxpool_backward<S>(const S* dout, const std::int32_t* argmax, S* dx, const ConvGeom& g) {         \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    std::atomic<std::int64_t> bad{-1}; /* the first bad argmax index of all chunks */                              \
    by_plane_chunks(g, on, in, [&](std::int64_t p0, const ConvGeom& c, float* df, float* dxf) {                   \
      widen(dout + p0 * on, df, c.C * on);                                                                         \
      const std::int64_t b = maxpool_backward<float>(df, argmax + p0 * on, dxf, c);                                \
      if (b >= 0) {                                                                                                \
        std::int64_t seen = bad.load();                                                                            \
        while ((seen < 0 || p0 * on + b < seen) && !bad.compare_exchange_weak(seen, p0 * on + b)) {                \
        }                                                                                                          \
      }                                                                                                            \
      narrow(dxf, dx + p0 * in, c.C * in);                                                                         \
    });                                                                                                            \
    return bad.load();                                                                                             \
  }                                                                                                                \
  template <>                                                                                                      \
  void avgpool_forward<S>(const S* x, S* out, const ConvGeom& g) {                                                \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, in, on, [&](std::int64_t p0, const ConvGeom& c, float* xf, float* of) {                    \
      widen(x + p0 * in, xf, c.C * in);                                                                            \
      avgpool_forward<float>(xf, of, c);                                                                           \
      narrow(of, out + p0 * on, c.C * on);                                                                         \
    });                                                                                                            \
  }                                                                                                                \
  template <>                                                                                                      \
  void avgpool_backward<S>(const S* dout, S* dx, const ConvGeom& g) {                                             \
    const std::int64_t in = g.plane(), on = g.OH * g.OW;                                                           \
    by_plane_chunks(g, on, in, [&](std::int64_t p0, const ConvGeom& c, float* df, float* dxf) {                   \
      widen(dout + p0 * on, df, c.C * on);                                                                         \
      avgpool_backward<float>(df, dxf, c);                                                                         \
      narrow(dxf, dx + p0 * in, c.C * in);                                                                         \
    });                                                                                                            \
  }
FC_HALF_TYPES(FC_POOL_HALF_)
#undef FC_POOL_HALF_

}  // namespace fastconv::cpu
