// dropout_hash.h: the counter-based draw of dropout, shared by the CPU and CUDA kernels so that one seed gives the
// same mask on both. Element i under seed draws u = (mix64(mix64(seed) + (i + 1) * G) >> 11) * 2^-53, G the 64-bit
// golden ratio 0x9E3779B97F4A7C15 and mix64 splitmix64's output function (Steele, Lea, Flood 2014): the mask
// depends only on (seed, i), never on how the index range is split over threads or blocks.
#pragma once
#include <cstdint>

#include "common/hd.h"

namespace fastconv::dropout_hash {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// A bijective 64-bit mixer.
FC_HD std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Hashing the seed first keeps nearby seeds (0, 1, 2, ...) from giving shifted copies of one stream.
FC_HD std::uint64_t stream_key(std::uint64_t seed) { return mix64(seed); }

// Top 53 bits -> a double in [0, 1), every value a multiple of 2^-53 (exact, never rounded up to 1).
FC_HD double draw(std::uint64_t key, std::int64_t i) {
  const std::uint64_t h = mix64(key + (static_cast<std::uint64_t>(i) + 1) * kGolden);
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

}  // namespace fastconv::dropout_hash
