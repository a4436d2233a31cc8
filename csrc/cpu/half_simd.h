// half_simd.h: the vector bodies of the row conversions (half_convert.h), included by half_avx2.cpp (AVX2 +
// F16C, 8 lanes) and half_avx512.cpp (16 lanes; in an emulated AVX-512 build, where that file is compiled for
// AVX2, the 8-lane bodies). f16 uses the hardware conversions (round to nearest even, the MXCSR default
// rounding is overridden by the immediate); bf16 is a 16-bit shift, with x + 0x7fff + lsb before it for
// round-to-nearest-even and NaN made quiet instead (the same bits as float_to_bf16 in half.h). AVX512_BF16's
// vcvtneps2bf16 is not used: it flushes float32 subnormal inputs to zero, which is not correctly rounded.
#pragma once
#include <immintrin.h>

#include "cpu/half_convert.h"

namespace fastconv::cpu {
namespace {  // internal linkage: each ISA file keeps its own copy (see ukr_simd.h)

using i64 = std::int64_t;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif

void widen_f16_simd(const f16* s, float* d, i64 n) {
  i64 i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(d + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
#else
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
  for (; i < n; ++i) d[i] = half_to_float(s[i]);
}

void narrow_f16_simd(const float* s, f16* d, i64 n) {
  i64 i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#else
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; ++i) d[i] = float_to_half(s[i]);
}

void widen_bf16_simd(const bf16* s, float* d, i64 n) {
  i64 i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    _mm512_storeu_si512(d + i, _mm512_slli_epi32(v, 16));
  }
#else
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_slli_epi32(v, 16));
  }
#endif
  for (; i < n; ++i) d[i] = bf16_to_float(s[i]);
}

void narrow_bf16_simd(const float* s, bf16* d, i64 n) {
  i64 i = 0;
#if defined(__AVX512F__)
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), abs = _mm512_set1_epi32(0x7fffffff);
  const __m512i inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x400000);
  for (; i + 16 <= n; i += 16) {
    const __m512i x = _mm512_loadu_si512(s + i);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), one);
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(bias, lsb));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, abs), inf);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(x, quiet));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
#else
  const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), abs = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000), quiet = _mm256_set1_epi32(0x400000);
  for (; i + 8 <= n; i += 8) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
    __m256i r = _mm256_add_epi32(x, _mm256_add_epi32(bias, lsb));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs), inf);
    r = _mm256_blendv_epi8(r, _mm256_or_si256(x, quiet), nan);
    r = _mm256_srli_epi32(r, 16);
    // packus works within 128-bit lanes: [r0..3 r0..3 | r4..7 r4..7]; qwords 0 and 2 hold r0..r7 in order
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm256_castsi256_si128(p));
  }
#endif
  for (; i < n; ++i) d[i] = float_to_bf16(s[i]);
}

inline HalfConv half_conv_simd() { return {widen_f16_simd, narrow_f16_simd, widen_bf16_simd, narrow_bf16_simd}; }

}  // namespace
}  // namespace fastconv::cpu
