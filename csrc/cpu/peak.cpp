// peak.cpp: FMA throughput calibration (see peak.h). Each kernel keeps CHAINS independent accumulators,
// acc = acc * x + y, so that CHAINS >= FMA latency x FMA pipes and the loop runs at issue rate, not at
// latency: Zen 3 / Skylake-SP have 4-cycle FMAs on 2 pipes, so 8 chains are the minimum; AVX2 uses 12 of
// its 16 ymm registers (2 hold x and y), AVX-512 16 of 32 zmm. x = 1 - 2^-10 and y = 2^-10 make 1 the
// fixed point, so the accumulators stay normal numbers (no denormal slow path, no overflow) for any length.
// Variants: avx512 and avx2 (intrinsics in functions compiled with target attributes, chosen at run time,
// no global -m flags), and the portable one: plain C++ multiply + add (baseline x86-64 has no FMA), which
// the compiler vectorises for the baseline ISA (SSE2: 4 float / 2 double lanes) just as it does the
// portable GEMM micro-kernel.
#include "cpu/peak.h"
#include "cpu/threads.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif
#if FASTCONV_HAVE_X86_UKR
#include <immintrin.h>
#endif

#include "cpu/isa.h"

namespace fastconv::cpu {

namespace {

// A kernel runs `iters` iterations of CHAINS multiply-adds of one vector each and returns a checksum of
// its accumulators (so the compiler cannot drop the loop). flops_per_iter = CHAINS * lanes * 2.
using peak_fn = double (*)(std::int64_t iters);
struct PeakKernel {
  peak_fn fn;
  double flops_per_iter;
};

constexpr double kX = 1.0 - 1.0 / 1024, kY = 1.0 / 1024;

// ------------------------------------------------------------------------------------------------------
// portable: CHAINS x LANES scalars, the inner LANES loop is what the compiler vectorises

constexpr int kRefChains = 12;
template <typename T>
constexpr int ref_lanes() { return 16 / int(sizeof(T)); }  // one 128-bit vector

template <typename T>
double peak_ref(std::int64_t iters) {
  constexpr int L = ref_lanes<T>();
  T acc[kRefChains][L];
  for (int c = 0; c < kRefChains; ++c)
    for (int l = 0; l < L; ++l) acc[c][l] = T(1) + T(0.01) * T(c * L + l);
  const T x = T(kX), y = T(kY);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kRefChains; ++c)
      for (int l = 0; l < L; ++l) acc[c][l] = acc[c][l] * x + y;
  double s = 0;
  for (int c = 0; c < kRefChains; ++c)
    for (int l = 0; l < L; ++l) s += double(acc[c][l]);
  return s;
}

#if FASTCONV_HAVE_X86_UKR
// ------------------------------------------------------------------------------------------------------
// AVX2 + FMA: 12 ymm chains

constexpr int kAvx2Chains = 12;

__attribute__((target("avx2,fma"))) double peak_avx2_f32(std::int64_t iters) {
  __m256 acc[kAvx2Chains];
  for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_set1_ps(1.0f + 0.01f * float(c));
  const __m256 x = _mm256_set1_ps(float(kX)), y = _mm256_set1_ps(float(kY));
  for (std::int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
  float buf[8];
  double s = 0;
  for (int c = 0; c < kAvx2Chains; ++c) {
    _mm256_storeu_ps(buf, acc[c]);
    for (float v : buf) s += double(v);
  }
  return s;
}

__attribute__((target("avx2,fma"))) double peak_avx2_f64(std::int64_t iters) {
  __m256d acc[kAvx2Chains];
  for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_set1_pd(1.0 + 0.01 * double(c));
  const __m256d x = _mm256_set1_pd(kX), y = _mm256_set1_pd(kY);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_fmadd_pd(acc[c], x, y);
  double buf[4];
  double s = 0;
  for (int c = 0; c < kAvx2Chains; ++c) {
    _mm256_storeu_pd(buf, acc[c]);
    for (double v : buf) s += v;
  }
  return s;
}

// ------------------------------------------------------------------------------------------------------
// AVX-512F: 16 zmm chains

constexpr int kAvx512Chains = 16;

__attribute__((target("avx512f,avx2,fma"))) double peak_avx512_f32(std::int64_t iters) {
  __m512 acc[kAvx512Chains];
  for (int c = 0; c < kAvx512Chains; ++c) acc[c] = _mm512_set1_ps(1.0f + 0.01f * float(c));
  const __m512 x = _mm512_set1_ps(float(kX)), y = _mm512_set1_ps(float(kY));
  for (std::int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kAvx512Chains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
  float buf[16];
  double s = 0;
  for (int c = 0; c < kAvx512Chains; ++c) {
    _mm512_storeu_ps(buf, acc[c]);
    for (float v : buf) s += double(v);
  }
  return s;
}

__attribute__((target("avx512f,avx2,fma"))) double peak_avx512_f64(std::int64_t iters) {
  __m512d acc[kAvx512Chains];
  for (int c = 0; c < kAvx512Chains; ++c) acc[c] = _mm512_set1_pd(1.0 + 0.01 * double(c));
  const __m512d x = _mm512_set1_pd(kX), y = _mm512_set1_pd(kY);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kAvx512Chains; ++c) acc[c] = _mm512_fmadd_pd(acc[c], x, y);
  double buf[8];
  double s = 0;
  for (int c = 0; c < kAvx512Chains; ++c) {
    _mm512_storeu_pd(buf, acc[c]);
    for (double v : buf) s += v;
  }
  return s;
}
#endif

PeakKernel select_kernel(const std::string& isa, bool f64) {
#if FASTCONV_HAVE_X86_UKR
  // "avx512" is offered without AVX-512 in an FASTCONV_EMULATE_AVX512 test build (its GEMM kernels then run
  // on AVX2); the zmm chains here would fault, and the code that runs is AVX2, so that is what is measured.
  if (isa == "avx512" && __builtin_cpu_supports("avx512f"))
    return f64 ? PeakKernel{peak_avx512_f64, kAvx512Chains * 8 * 2.0}
               : PeakKernel{peak_avx512_f32, kAvx512Chains * 16 * 2.0};
  if (isa == "avx2" || isa == "avx512")
    return f64 ? PeakKernel{peak_avx2_f64, kAvx2Chains * 4 * 2.0}
               : PeakKernel{peak_avx2_f32, kAvx2Chains * 8 * 2.0};
#endif
  return f64 ? PeakKernel{peak_ref<double>, kRefChains * ref_lanes<double>() * 2.0}
             : PeakKernel{peak_ref<float>, kRefChains * ref_lanes<float>() * 2.0};
}

// Wall time of `threads` threads each running k.fn(iters) at once (thread start-up included; it is
// microseconds against runs of tens of milliseconds).
// `team` receives the number of threads OpenMP actually ran (it may give fewer, e.g. under OMP_THREAD_LIMIT).
double run_once(const PeakKernel& k, std::int64_t iters, int threads, std::vector<double>& sink, int& team) {
  const auto t0 = std::chrono::steady_clock::now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    sink[std::size_t(omp_get_thread_num())] = k.fn(iters);
#pragma omp master
    team = omp_get_num_threads();
  }
#else
  sink[0] = k.fn(iters);
  team = 1;
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double fma_peak(const std::string& dtype, int threads, const std::string& isa, double seconds) {
  if (dtype != "float32" && dtype != "float64")
    throw std::invalid_argument("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
  if (threads < 1 || threads > 1024)
    throw std::invalid_argument("threads: expected 1..1024, got " + std::to_string(threads));
#ifndef _OPENMP
  if (threads != 1) throw std::invalid_argument("threads: this build has no OpenMP, only threads=1 is possible");
#endif
  // A team of more than one would wait forever for the OpenMP pool threads fork() left behind (threads.cpp).
  if (threads != 1 && forked_child())
    throw std::invalid_argument("threads: this process was forked after fastconv was loaded and runs on 1 "
                                "thread (OpenMP's threads do not survive fork), got " +
                                std::to_string(threads));
  if (!(seconds > 0.0 && seconds <= 60.0))  // also rejects NaN
    throw std::invalid_argument("seconds: expected a duration in (0, 60], got " + std::to_string(seconds));
  bool known = false;
  for (const char* s : supported_isas()) known = known || isa == s;
  if (!known) {
    std::string have;
    for (const char* s : supported_isas()) have += std::string(have.empty() ? "" : ", ") + s;
    throw std::invalid_argument("isa: '" + isa + "' is not supported by this CPU or build (supported: " + have + ")");
  }
  const PeakKernel k = select_kernel(isa, dtype == "float64");
  std::vector<double> sink(std::size_t(threads), 0.0);
  int team = 1;

  // Calibrate the length on the calling thread alone (a team's run may include waiting for a thread to be
  // scheduled, which says nothing about the length), growing it until one run takes rep_s; this also brings
  // the core out of its idle clocks. Runs are short (2 ms) and many, for the same reason the benches keep
  // the min of many short repeats: on a shared host a long run is almost always preempted, so a peak from
  // long runs would sit below what a short GEMM call sees (measured here at load ~10 on 2 cores, 1 thread:
  // 2 ms runs 100 GFLOP/s, 10 ms 50, 30 ms 37). Several threads must all hold a core during the same run,
  // which a loaded host rarely grants: multi-thread figures there are low, never high.
  const double rep_s = std::min(seconds / 8, 0.002);
  std::int64_t iters = 1 << 10;
  auto serial = [&](std::int64_t n) {
    const auto t0 = std::chrono::steady_clock::now();
    sink[0] = k.fn(n);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double t = serial(iters);
  while (t < rep_s && iters < (std::int64_t(1) << 40)) {
    const double scale = t > 0 ? std::min(8.0, std::max(2.0, 1.2 * rep_s / t)) : 8.0;
    iters = std::int64_t(double(iters) * scale);
    t = serial(iters);
  }
  run_once(k, iters, threads, sink, team);  // starts the thread team; not counted
  // Measure: the best of at least 3 runs, until about `seconds` have been spent on them. The best, not the
  // mean, because on a shared host other load only ever slows a run down.
  double best = 0, spent = 0;
  for (int rep = 0; rep < 3 || spent < 0.75 * seconds; ++rep) {
    t = run_once(k, iters, threads, sink, team);
    spent += t;
    best = std::max(best, k.flops_per_iter * double(iters) * team / t);
    if (rep > 100000) break;
  }
  // the checksum is consumed so no run can be optimised away; every accumulator converges to 1
  double check = 0;
  for (double v : sink) check += v;
  if (!std::isfinite(check)) throw std::runtime_error("fma_peak: accumulators are not finite");
  return best * 1e-9;
}

}  // namespace fastconv::cpu
