// half_convert.cpp: the scalar row conversions and the dispatch of widen / narrow on the ISA in use
// (half_convert.h). The choice is read per call (one relaxed atomic load), so set_cpu_isa switches it too.
#include "cpu/half_convert.h"

#include "cpu/isa.h"

namespace fastconv::cpu {

namespace {

void widen_f16_scalar(const f16* s, float* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = half_to_float(s[i]);
}
void narrow_f16_scalar(const float* s, f16* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = float_to_half(s[i]);
}
void widen_bf16_scalar(const bf16* s, float* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = bf16_to_float(s[i]);
}
void narrow_bf16_scalar(const float* s, bf16* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(s[i]);
}

const HalfConv kScalar{widen_f16_scalar, narrow_f16_scalar, widen_bf16_scalar, narrow_bf16_scalar};
#if FASTCONV_HAVE_X86_UKR
const HalfConv kAvx2 = half_conv_avx2();
const HalfConv kAvx512 = half_conv_avx512();
#endif

const HalfConv& conv() {
#if FASTCONV_HAVE_X86_UKR
  switch (active_isa()) {
    case Isa::avx512: return kAvx512;
    case Isa::avx2: return kAvx2;
    default: return kScalar;
  }
#else
  return kScalar;
#endif
}

}  // namespace

void widen(const f16* src, float* dst, std::int64_t n) { conv().widen_f16(src, dst, n); }
void widen(const bf16* src, float* dst, std::int64_t n) { conv().widen_bf16(src, dst, n); }
void narrow(const float* src, f16* dst, std::int64_t n) { conv().narrow_f16(src, dst, n); }
void narrow(const float* src, bf16* dst, std::int64_t n) { conv().narrow_bf16(src, dst, n); }

// the compute policy's rows: the scalar conversions of common/policy.h (f64_as_f32's are plain casts)
void widen(const f64_as_f32* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i].v);
}
void widen(const f64_as_f16* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = to_compute(src[i]);
}
void widen(const f64_as_bf16* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = to_compute(src[i]);
}
void narrow(const float* src, f64_as_f32* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i].v = static_cast<double>(src[i]);
}
void narrow(const float* src, f64_as_f16* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = from_compute<f64_as_f16>(src[i]);
}
void narrow(const float* src, f64_as_bf16* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = from_compute<f64_as_bf16>(src[i]);
}

}  // namespace fastconv::cpu
