// threads.cpp: process-wide thread count (see threads.h). Starts from OpenMP's default, which honours
// OMP_NUM_THREADS.
#include "cpu/threads.h"

#include <atomic>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv::cpu {

static int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static std::atomic<int> g_threads{default_threads()};

int num_threads() { return g_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }
bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastconv::cpu
