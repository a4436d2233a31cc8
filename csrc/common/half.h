// half.h: the 16-bit storage types f16 (IEEE 754 binary16) and bf16 (bfloat16: the top half of a float32),
// their scalar conversions to and from float (round-to-nearest-even on the way down, infinities kept, NaN kept
// as a quiet NaN), and compute_t<T>: the type kernels compute in (float for f16 / bf16, T otherwise).
// A reduced-precision dtype is a STORAGE type only: kernels load-convert-compute in float32 and round once on
// the store. Whole-row conversions (widen / narrow) run under the CPU's ISA dispatch (cpu/half_convert.cpp:
// F16C / AVX-512 conversions for f16, 16-bit shifts with RNE for bf16, a portable scalar loop).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fastconv {

// Layout-compatible with NumPy's float16 and ml_dtypes' bfloat16: one 16-bit pattern, nothing else.
struct f16 {
  std::uint16_t bits;
};
struct bf16 {
  std::uint16_t bits;
};
static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2, "16-bit storage types");

template <typename T>
struct is_half : std::false_type {};
template <>
struct is_half<f16> : std::true_type {};
template <>
struct is_half<bf16> : std::true_type {};
template <typename T>
inline constexpr bool is_half_v = is_half<T>::value;

// A storage type whose kernels compute in float: f16, bf16, and the float64 types of the compute policy
// (common/policy.h, which specialises this trait for them).
template <typename T>
struct is_staged : is_half<T> {};
template <typename T>
inline constexpr bool is_staged_v = is_staged<T>::value;

// The arithmetic type of T's kernels: sums, products and every intermediate of a reduced-precision op are float.
template <typename T>
using compute_t = std::conditional_t<is_staged_v<T>, float, T>;

inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ------------------------------------------------------------------------------------------------------
// scalar conversions (the portable path, and the reference the vector paths are tested against)

// binary16 -> float: exact. NaN keeps its payload with the quiet bit set (as F16C's vcvtph2ps does).
inline float half_to_float(f16 h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
  if (e == 0) {
    // zero or subnormal: m * 2^-24, exact in float
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return bits_float(sign | float_bits(v));
  }
  return bits_float(sign | ((e + 112) << 23) | (m << 13));
}

// float -> binary16, round to nearest, ties to even; |f| >= 65520 (halfway above the largest half, 65504)
// becomes inf, as IEEE rounding requires; NaN stays a quiet NaN with the top of its payload.
inline f16 float_to_half(float f) {
  std::uint32_t x = float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u)  // inf or NaN
    return {static_cast<std::uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0u))};
  if (x >= 0x477ff000u) return {static_cast<std::uint16_t>(sign | 0x7c00u)};  // 65520.0f and above
  if (x >= 0x38800000u) {
    // normal half (|f| >= 2^-14): rebias the exponent, then add half an ulp minus one plus the kept lsb, so
    // that a tie rounds to even; a carry out of the mantissa moves into the exponent, which is correct
    const std::uint32_t r = x - 0x38000000u + 0xfffu + ((x >> 13) & 1u);
    return {static_cast<std::uint16_t>(sign | (r >> 13))};
  }
  // subnormal half (or zero): the value in units of 2^-24 is mant * 2^(e - 126)
  const std::uint32_t e = x >> 23;
  if (e < 102) return {sign};  // below 2^-25: rounds to zero (exactly 2^-25 is a tie and rounds to even 0)
  const std::uint32_t mant = (x & 0x7fffffu) | 0x800000u, shift = 126 - e;  // shift in [14, 24]
  std::uint32_t q = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;  // q may reach 0x400: the smallest normal, correct
  return {static_cast<std::uint16_t>(sign | q)};
}

// bfloat16 -> float: exact (the pattern shifted up by 16 bits).
inline float bf16_to_float(bf16 h) { return bits_float(static_cast<std::uint32_t>(h.bits) << 16); }

// float -> bfloat16, round to nearest, ties to even (overflow rounds to inf through the carry); NaN stays a
// quiet NaN.
inline bf16 float_to_bf16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return {static_cast<std::uint16_t>((x >> 16) | 0x40u)};
  return {static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16)};
}

// ------------------------------------------------------------------------------------------------------
// to_compute / from_compute: the one spelling kernels use for a load and a store of T

inline float to_compute(f16 v) { return half_to_float(v); }
inline float to_compute(bf16 v) { return bf16_to_float(v); }
inline float to_compute(float v) { return v; }
inline double to_compute(double v) { return v; }

template <typename T>
inline T from_compute(compute_t<T> v) {
  if constexpr (std::is_same_v<T, f16>) return float_to_half(v);
  else if constexpr (std::is_same_v<T, bf16>) return float_to_bf16(v);
  else return v;
}

// double -> float rounded to odd: truncated toward zero, with the last bit set when anything was cut off. A
// value rounded to odd with at least two more bits than a narrower format rounds to that format (to nearest
// even) exactly as the double itself would (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums:
// proved algorithms using rounding to odd", 2008), so double -> f16 / bf16 is rounded once, not twice.
inline float double_to_float_odd(double d) {
  float f = static_cast<float>(d);  // to nearest even (inf past float's range)
  if (static_cast<double>(f) != d && d == d) {
    std::uint32_t u = float_bits(f);
    if (std::fabs(static_cast<double>(f)) > std::fabs(d)) --u;  // rounded away from zero: step back (truncation)
    f = bits_float(u | 1u);
  }
  return f;
}

// A double rounded to T (the kernels that sum or normalise in double): for f16 / bf16 through the float
// rounded to odd, so the value is rounded once, as the double itself would be (a plain double -> float -> 16-bit
// path rounds twice and can miss a tie by one 16-bit step).
template <typename T>
inline T from_double(double v) {
  if constexpr (is_half_v<T>) return from_compute<T>(double_to_float_odd(v));
  else return static_cast<T>(v);
}

}  // namespace fastconv
