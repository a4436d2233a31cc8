// isa.cpp: the run-time choice of instruction set (isa.h). __builtin_cpu_supports reads CPUID once; the choice
// lives in one atomic, read by every GEMM call (relaxed: it changes only between calls, in tests).
#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace fastconv::cpu {

namespace {

const char* const kIsaNames[] = {"scalar", "avx2", "avx512"};

bool cpu_has(Isa isa) {
#if FASTCONV_HAVE_X86_UKR
  __builtin_cpu_init();
  switch (isa) {
#if FASTCONV_EMULATE_AVX512
    // test build: ukr_avx512.cpp was compiled for AVX2 (CMakeLists.txt), so it runs wherever AVX2 does
    case Isa::avx512: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    case Isa::avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#endif
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return isa == Isa::scalar;
#endif
}

Isa parse_isa(const std::string& s) {
  for (int i = 0; i < 3; ++i)
    if (s == kIsaNames[i]) return static_cast<Isa>(i);
  throw std::invalid_argument("FASTCONV_ISA / isa: unknown ISA '" + s + "', expected one of avx512, avx2, scalar");
}

Isa initial_isa() {
  Isa best = cpu_has(Isa::avx512) ? Isa::avx512 : cpu_has(Isa::avx2) ? Isa::avx2 : Isa::scalar;
  if (const char* env = std::getenv("FASTCONV_ISA")) {
    // a forced ISA may only lower the choice; an unknown or unsupported value keeps the best one
    // (an import must not fail because of an environment variable; fastconv.info() shows the outcome)
    try {
      Isa want = parse_isa(env);
      if (cpu_has(want)) return want;
    } catch (const std::exception&) {
    }
  }
  return best;
}

std::atomic<int> g_isa{static_cast<int>(initial_isa())};

}  // namespace

Isa active_isa() { return static_cast<Isa>(g_isa.load(std::memory_order_relaxed)); }

const char* active_isa_name() { return kIsaNames[g_isa.load()]; }

void set_isa(const std::string& name) {
  Isa want = parse_isa(name);
  if (!cpu_has(want)) throw std::invalid_argument("isa: '" + name + "' is not supported by this CPU or build");
  g_isa.store(static_cast<int>(want));
}

std::vector<const char*> compiled_isas() {
#if FASTCONV_HAVE_X86_UKR
  return {"scalar", "avx2", "avx512"};
#else
  return {"scalar"};
#endif
}

std::vector<const char*> supported_isas() {
  std::vector<const char*> out;
  for (int i = 0; i < 3; ++i)
    if (cpu_has(static_cast<Isa>(i))) out.push_back(kIsaNames[i]);
  return out;
}

}  // namespace fastconv::cpu
