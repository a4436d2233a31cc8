// threads.h: the one thread count every OpenMP region in fastconv uses (fastconv.set_num_threads).
// Kept in an atomic instead of omp_set_num_threads, whose setting is per calling thread: kernels are
// called from any Python thread with the GIL released.
#pragma once

namespace fastconv::cpu {
int num_threads();
void set_num_threads(int n);
bool openmp_enabled();
}  // namespace fastconv::cpu
