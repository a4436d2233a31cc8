// check.h: argument checks and overflow-safe size arithmetic shared by kernels and bindings.
// FC_CHECK(cond, msg) throws std::invalid_argument (ValueError in Python) with a message that names the
// argument. checked_mul / checked_size reject products that would overflow before anything is allocated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fastconv {

#define FC_CHECK(cond, msg)                                   \
  do {                                                        \
    if (!(cond)) {                                            \
      std::ostringstream fc_check_os_;                        \
      fc_check_os_ << msg;                                    \
      throw std::invalid_argument(fc_check_os_.str());        \
    }                                                         \
  } while (0)

// a * b for non-negative sizes; throws when the product does not fit in int64 (std::ptrdiff_t).
inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what) {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + ": negative size");
  if (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a)
    throw std::invalid_argument(std::string(what) + ": size overflows 64-bit integers");
  return a * b;
}

template <typename... Ts>
inline std::int64_t checked_size(const char* what, std::int64_t first, Ts... rest) {
  std::int64_t r = first;
  ((r = checked_mul(r, static_cast<std::int64_t>(rest), what)), ...);
  return r;
}

}  // namespace fastconv
