// threads.h: the one thread count every OpenMP region in fastconv uses (fastconv.set_num_threads).
// Kept in an atomic instead of omp_set_num_threads, whose setting is per calling thread: kernels are
// called from any Python thread with the GIL released. The count is bounded by thread_limit(), and is 1
// in a process forked after this library was loaded (see threads.cpp for why).
#pragma once

namespace fastconv::cpu {
int num_threads();
// Clamped to [1, thread_limit()], and to 1 in a forked child; fastconv.set_num_threads validates first.
void set_num_threads(int n);
// Most threads a kernel may use: 4 per CPU this process may run on (its affinity mask), at least 16.
int thread_limit();
// True in a process forked (fork(), os.fork, multiprocessing's "fork") after this library was loaded.
bool forked_child();
bool openmp_enabled();
}  // namespace fastconv::cpu
