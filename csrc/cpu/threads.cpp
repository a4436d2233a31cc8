// threads.cpp: process-wide thread count (see threads.h). Starts from OpenMP's default, which honours
// OMP_NUM_THREADS, clamped to thread_limit() without a warning (an import must not warn).
#include "cpu/threads.h"

#include <algorithm>
#include <atomic>
#include <thread>
#ifdef __linux__
#include <sched.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv::cpu {

// ------------------------------------------------------------------------------------------------------
// limit

// More threads than cores only adds switching, and every OpenMP thread holds a stack (8 MiB of address
// space by default): set_num_threads(10**6) used to end in a segfault under `ulimit -v`. 4 per CPU leaves
// room for oversubscription experiments; the floor keeps small containers and 1-CPU masks usable.
constexpr int kThreadsPerCpu = 4;
constexpr int kMinThreadLimit = 16;

static int usable_cpus() {
#ifdef __linux__
  // The affinity mask, not the machine: taskset / cgroup cpusets shrink it (os.sched_getaffinity).
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  const unsigned hw = std::thread::hardware_concurrency();  // > 1024 CPUs or not Linux
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int thread_limit() { return std::max(kMinThreadLimit, kThreadsPerCpu * usable_cpus()); }

// ------------------------------------------------------------------------------------------------------
// count

static int default_threads() {
#ifdef _OPENMP
  return std::clamp(omp_get_max_threads(), 1, thread_limit());
#else
  return 1;
#endif
}

static std::atomic<int> g_threads{default_threads()};

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  g_threads.store(std::clamp(n, 1, thread_limit()), std::memory_order_relaxed);
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastconv::cpu
