// threads.cpp: process-wide thread count (see threads.h). Starts from OpenMP's default, which honours
// OMP_NUM_THREADS, clamped to thread_limit() without a warning (an import must not warn).
// fork(): GNU libgomp keeps its worker threads in a pool owned by the thread that started the parallel
// regions; after fork() the child has the pool's bookkeeping but not its threads, so the child's next team
// of more than one thread waits for them forever. A team of one never touches the pool (gomp_team_start
// returns before it does), so a pthread_atfork child handler drops the count to 1 and keeps it there.
#include "cpu/threads.h"

#include <algorithm>
#include <atomic>
#include <thread>
#ifdef __linux__
#include <sched.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
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
static std::atomic<bool> g_forked_child{false};

#ifdef _OPENMP
// Runs in the child right after fork(), before anything else: only stores to lock-free atomics.
static void on_fork_child() {
  g_forked_child.store(true, std::memory_order_relaxed);
  g_threads.store(1, std::memory_order_relaxed);
}
// Registered once, when the module is loaded (it is never unloaded, so the handler stays valid). Every
// fork counts, not only those after a kernel ran: the pool may come from another library sharing libgomp.
static const bool g_atfork_registered = pthread_atfork(nullptr, nullptr, on_fork_child) == 0;
#endif

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  const int bounded = g_forked_child.load(std::memory_order_relaxed) ? 1 : std::clamp(n, 1, thread_limit());
  g_threads.store(bounded, std::memory_order_relaxed);
}

bool forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastconv::cpu
