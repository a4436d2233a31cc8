// threads.h: the one thread count every OpenMP region in fastconv uses (fastconv.set_num_threads).
// Kept in an atomic instead of omp_set_num_threads, whose setting is per calling thread: kernels are
// called from any Python thread with the GIL released. The count is bounded by thread_limit(), and is 1
// in a process forked after this library was loaded (see threads.cpp for why).
#pragma once
#include <cstdint>

namespace fastconv::cpu {
int num_threads();
// Clamped to [1, thread_limit()], and to 1 in a forked child; fastconv.set_num_threads validates first.
void set_num_threads(int n);
// Most threads a kernel may use: 4 per CPU this process may run on (its affinity mask), at least 16.
int thread_limit();
// True in a process forked (fork(), os.fork, multiprocessing's "fork") after this library was loaded.
bool forked_child();
bool openmp_enabled();

// f(i) for every i < n, elementwise (nothing reduced, so any split gives the same bits): over the team of
// num_threads() in static chunks when n >= parallel_min, else on the calling thread; vectorised either way.
// (Written out because GCC compiles the serial fallback of `omp parallel for simd if (...)` as a scalar
// loop: a ReLU on a 512-value block, which the 16-bit kernels hand to the float ones, took a branch per
// value and ran 15x slower than the vector loop; measured on ReLU forward, 100 x 16 x 28 x 28 float16.)
template <typename F>
inline void simd_for(std::int64_t n, std::int64_t parallel_min, F&& f) {
  if (n >= parallel_min) {
#pragma omp parallel for simd schedule(static) num_threads(num_threads())
    for (std::int64_t i = 0; i < n; ++i) f(i);
  } else {
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) f(i);
  }
}
}  // namespace fastconv::cpu
