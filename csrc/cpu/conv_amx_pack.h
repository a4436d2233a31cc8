// conv_amx_pack.h: the packing and store loops around the AMX tile kernel (conv_amx.h), compiled twice: in
// conv_amx_tiles.cpp with AVX-512 (the native path) and in conv_amx.cpp for the baseline ISA (the emulated
// path, so the tests of the emulated mode run this same code). Each includer defines FC_AMX_NS, the variant's
// namespace (the two copies are different machine code for one source: they must not share a linkage name).
#ifndef FC_AMX_NS
#error "define FC_AMX_NS (the variant's namespace) before including conv_amx_pack.h"
#endif
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common/activation_step.h"
#include "common/half.h"
#include "cpu/conv_amx.h"

namespace fastconv::cpu::FC_AMX_NS {

namespace {

typedef std::uint32_t U16x32 __attribute__((vector_size(64)));  // 16 lanes of 32 bits

// v[i] lane j <- v[j] lane i, 16 x 16 (the butterfly of conv_depthwise_kernels.h's Transposer, on 32-bit
// lanes)
template <int S, std::size_t... J>
constexpr U16x32 lo_mask(std::index_sequence<J...>) {
  return U16x32{static_cast<std::uint32_t>((J & S) == 0 ? J : 16 + J - S)...};
}
template <int S, std::size_t... J>
constexpr U16x32 hi_mask(std::index_sequence<J...>) {
  return U16x32{static_cast<std::uint32_t>((J & S) == 0 ? J + S : 16 + J)...};
}
template <int S>
inline void transpose_stage(U16x32* v) {
  if constexpr (S < 16) {
    constexpr U16x32 lo = lo_mask<S>(std::make_index_sequence<16>()), hi = hi_mask<S>(std::make_index_sequence<16>());
    for (int i = 0; i < 16; ++i)
      if ((i & S) == 0) {
        const U16x32 a = v[i], b = v[i + S];
        v[i] = __builtin_shuffle(a, b, lo);
        v[i + S] = __builtin_shuffle(a, b, hi);
      }
    transpose_stage<2 * S>(v);
  }
}

// The smallest biased exponent among the nonzero values (255 when all are zero), or -1 when one is inf, NaN
// or subnormal: the tiles read a subnormal input as zero and flush a product or sum below 2**-126 to zero,
// errors the staged path does not make, so the callers keep the tiles to operands whose products cannot get
// there (amx_exponents_ok). 16-bit lanes, a min and an or: it vectorises.
int exponent_scan(const bf16* p, index_t n) {
  std::uint16_t bad = 0, emin = 0xff;
  for (index_t i = 0; i < n; ++i) {
    const std::uint16_t v = p[i].bits & 0x7fffu, e = v >> 7;
    bad |= static_cast<std::uint16_t>((e == 0xff) | ((e == 0) & (v != 0)));
    emin = std::min<std::uint16_t>(emin, v == 0 ? 0xff : e);
  }
  return bad ? -1 : emin;
}

// hi[i], lo[i] = split_f16(src[i]) for i < n.
void split_row(const std::uint16_t* src, std::uint16_t* hi, std::uint16_t* lo, index_t n) {
  index_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (; i + 16 <= n; i += 16) {
    const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    const __m512i h = _mm512_and_si512(_mm512_castps_si512(f), top);
    const __m512 l = _mm512_sub_ps(f, _mm512_castsi512_ps(h));  // exact: the bits h dropped
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i),
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(l), 16)));
  }
#endif
  for (; i < n; ++i) split_f16(src[i], hi[i], lo[i]);
}

// C planes of H x W, each padded into Hp x R then zeros up to `plane` values (dst: C * plane).
void pad_planes(const bf16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R, index_t plane,
                std::uint16_t* dst) {
  for (index_t c = 0; c < C; ++c) {
    std::uint16_t* d = dst + c * plane;
    const bf16* s = x + c * H * W;
    std::memset(d, 0, static_cast<std::size_t>(pt * R + pl) * 2);
    for (index_t h = 0; h < H; ++h) {
      std::memcpy(d + (h + pt) * R + pl, s + h * W, static_cast<std::size_t>(W) * 2);
      const index_t gap_end = h + 1 < H ? (h + 1 + pt) * R + pl : plane;  // right pad + next row's left pad
      std::memset(d + (h + pt) * R + pl + W, 0, static_cast<std::size_t>(gap_end - ((h + pt) * R + pl + W)) * 2);
    }
  }
}

// The forward's B: per channel, dst[c*plane + i] = (p[i], p[i+1]) of the padded plane p (the pair of taps kw,
// kw + 1 at one pixel is one 32-bit value). tmp: plane + 1 values.
void pair_planes(const bf16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R, index_t plane,
                 std::uint16_t* tmp, std::uint32_t* dst) {
  tmp[plane] = 0;
  for (index_t c = 0; c < C; ++c) {
    pad_planes(x + c * H * W, 1, H, W, pt, pl, R, plane, tmp);
    std::uint32_t* d = dst + c * plane;
    for (index_t i = 0; i < plane; ++i) d[i] = tmp[i] | (static_cast<std::uint32_t>(tmp[i + 1]) << 16);
  }
}

// The weight gradient's B for one image: dout (FN x OH x OW) on the wide grid (row oh at oh*R, zeros past OW
// and up to Ppad, a multiple of 32) as pairs of consecutive pixels, transposed, zero filters up to FNp (a
// multiple of 16): dst[r*FNp + f] = (d[f][2r], d[f][2r+1]). db[f] += the sum of dout[f] over the wide row in
// 16 interleaved partial sums added in order at the end (an order fixed by the shape; one running sum was a
// chain of dependent adds that cost more than the tiles). tmp: 16 * Ppad values.
void dout_pairs(const bf16* d, index_t FN, index_t FNp, index_t OH, index_t OW, index_t R, index_t Ppad,
                std::uint16_t* tmp, std::uint32_t* dst, float* db) {
  for (index_t f0 = 0; f0 < FNp; f0 += 16) {
    for (index_t j = 0; j < 16; ++j) {
      std::uint16_t* t = tmp + j * Ppad;
      std::memset(t, 0, static_cast<std::size_t>(Ppad) * 2);
      if (f0 + j >= FN) continue;
      const bf16* s = d + (f0 + j) * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) std::memcpy(t + oh * R, s + oh * OW, static_cast<std::size_t>(OW) * 2);
      float part[16] = {};
      for (index_t i = 0; i < Ppad; i += 16)
        for (int k = 0; k < 16; ++k) part[k] += bf16_to_float(bf16{t[i + k]});
      float sum = 0.0f;
      for (int k = 0; k < 16; ++k) sum += part[k];
      db[f0 + j] += sum;
    }
    for (index_t r0 = 0; r0 < Ppad / 2; r0 += 16) {
      U16x32 v[16];
      for (int j = 0; j < 16; ++j) std::memcpy(&v[j], tmp + j * Ppad + 2 * r0, 64);
      transpose_stage<1>(v);
      for (int k = 0; k < 16; ++k) std::memcpy(dst + (r0 + k) * FNp + f0, &v[k], 64);
    }
  }
}

// out[r*ldo + k] = bf16(relu?(c[r*ldc + k] + bias[r])) for r < rows, k < len (bias null: + 0, which turns a
// sum of -0.0 products into +0.0 as the reference's); one rounding, to nearest even.
void store_rows(const float* c, index_t ldc, index_t rows, index_t len, const float* bias, bool relu, bf16* out,
                index_t ldo) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  // 16 values a step, the tail masked (the compiler's loop left rows of 28 and 14 values mostly to scalar
  // code); the rounding is float_to_bf16's, NaN included
  const __m512i nan_bits = _mm512_set1_epi32(0x7f800000), abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x40);
  for (index_t r = 0; r < rows; ++r) {
    const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
    const float* cr = c + r * ldc;
    bf16* o = out + r * ldo;
    for (index_t k = 0; k < len; k += 16) {
      const __mmask16 m = len - k >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (len - k)) - 1);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr + k), b);
      if (relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);  // ties to even
      const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, lsb)), 16);
      const __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), nan_bits);
      const __m512i res = _mm512_mask_mov_epi32(rounded, isnan, _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet));
      _mm256_mask_storeu_epi16(o + k, m, _mm512_cvtepi32_epi16(res));
    }
  }
  return;
#endif
  for (index_t r = 0; r < rows; ++r) {
    const float b = bias ? bias[r] : 0.0f;
    const float* cr = c + r * ldc;
    bf16* o = out + r * ldo;
    if (relu)
      for (index_t k = 0; k < len; ++k) o[k] = float_to_bf16(relu_value(cr[k] + b));
    else
      for (index_t k = 0; k < len; ++k) o[k] = float_to_bf16(cr[k] + b);
  }
}

// ------------------------------------------------------------------------------------------------------
// float16 on the bfloat16 tiles (conv_amx.h: split_f16): each value as hi + lo, both bfloat16

// True when no value is inf or NaN (all the float16 tiles need: conv_amx.h, split_f16).
bool f16_finite(const f16* p, index_t n) {
  std::uint16_t bad = 0;
  for (index_t i = 0; i < n; ++i) bad |= static_cast<std::uint16_t>((p[i].bits & 0x7c00u) == 0x7c00u);
  return bad == 0;
}

// The forward's B for float16: per channel, the padded plane split into its hi and lo halves, each as
// pair_planes writes bfloat16 (dst_hi, dst_lo: C * plane pairs each). tmp: 3 * (plane + 1) values.
void pair_planes_f16(const f16* x, index_t C, index_t H, index_t W, index_t pt, index_t pl, index_t R, index_t plane,
                     std::uint16_t* tmp, std::uint32_t* dst_hi, std::uint32_t* dst_lo) {
  std::uint16_t *th = tmp + plane + 1, *tl = th + plane + 1;
  th[plane] = tl[plane] = 0;
  for (index_t c = 0; c < C; ++c) {
    pad_planes(reinterpret_cast<const bf16*>(x + c * H * W), 1, H, W, pt, pl, R, plane, tmp);  // the bits as they are
    split_row(tmp, th, tl, plane);
    std::uint32_t *dh = dst_hi + c * plane, *dl = dst_lo + c * plane;
    for (index_t i = 0; i < plane; ++i) {
      dh[i] = th[i] | (static_cast<std::uint32_t>(th[i + 1]) << 16);
      dl[i] = tl[i] | (static_cast<std::uint32_t>(tl[i + 1]) << 16);
    }
  }
}

// store_rows for a float16 output: one rounding, to nearest even (float_to_half, vcvtps2ph on AVX-512).
void store_rows_f16(const float* c, index_t ldc, index_t rows, index_t len, const float* bias, bool relu, f16* out,
                    index_t ldo) {
  for (index_t r = 0; r < rows; ++r) {
    const float b = bias ? bias[r] : 0.0f;
    const float* cr = c + r * ldc;
    f16* o = out + r * ldo;
    index_t k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    const __m512 vb = _mm512_set1_ps(b);
    for (; k < len; k += 16) {
      const __mmask16 m = len - k >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (len - k)) - 1);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr + k), vb);
      if (relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
      _mm256_mask_storeu_epi16(o + k, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#endif
    for (; k < len; ++k) o[k] = float_to_half(relu ? relu_value(cr[k] + b) : cr[k] + b);
  }
}

}  // namespace

inline AmxPack pack_fns() {
  return {exponent_scan, pad_planes, pair_planes, dout_pairs, store_rows, f16_finite, pair_planes_f16, store_rows_f16};
}

}  // namespace fastconv::cpu::FC_AMX_NS
