// isa.cpp: the run-time choice of instruction set (isa.h). __builtin_cpu_supports reads CPUID once; the choice
// lives in one atomic, read by every GEMM call (relaxed: it changes only between calls, in tests).
#include "cpu/isa.h"

#include <atomic>
#if FASTCONV_HAVE_X86_UKR
#include <cpuid.h>
#endif
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

const char* const kTileNames[] = {"16x16", "12x32"};

Avx512Tile parse_tile(const std::string& s) {
  for (int i = 0; i < 2; ++i)
    if (s == kTileNames[i]) return static_cast<Avx512Tile>(i);
  throw std::invalid_argument("FASTCONV_GEMM_TILE / tile: unknown AVX-512 GEMM tile '" + s +
                              "', expected one of 16x16, 12x32");
}

// AMD's AVX-512 cores (Zen 4) split a 512-bit FMA over two 256-bit pipes: the 16x16 kernel measured there
// stays. Every other CPU gets 12x32, measured on an Intel Xeon with two 512-bit FMA pipes (gemm/config.h;
// Intel parts with one such pipe are not measured).
Avx512Tile initial_tile() {
  if (const char* env = std::getenv("FASTCONV_GEMM_TILE")) {
    try {
      return parse_tile(env);  // an unknown value keeps the CPU's choice, as FASTCONV_ISA does
    } catch (const std::exception&) {
    }
  }
#if FASTCONV_HAVE_X86_UKR
  unsigned a = 0, b = 0, c = 0, d = 0;
  // vendor string "AuthenticAMD": ebx "Auth", edx "enti", ecx "cAMD"
  if (__get_cpuid(0, &a, &b, &c, &d) && c == 0x444d4163u) return Avx512Tile::t16x16;
#endif
  return Avx512Tile::t12x32;
}

std::atomic<int> g_tile{static_cast<int>(initial_tile())};

}  // namespace

Avx512Tile avx512_tile() { return static_cast<Avx512Tile>(g_tile.load(std::memory_order_relaxed)); }

const char* avx512_tile_name() { return kTileNames[g_tile.load()]; }

void set_avx512_tile(const std::string& name) { g_tile.store(static_cast<int>(parse_tile(name))); }

std::vector<const char*> avx512_tiles() { return {kTileNames[0], kTileNames[1]}; }

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

std::vector<const char*> cpu_features() {
  std::vector<const char*> out;
#if FASTCONV_HAVE_X86_UKR
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29))) out.push_back("f16c");
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");  // CPU and OS (XCR0) both enable AVX-512 state
  unsigned a0 = 0, b0 = 0, c0 = 0, d0 = 0, a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  const bool leaf7 = __get_cpuid_count(7, 0, &a0, &b0, &c0, &d0);
  const bool leaf71 = leaf7 && a0 >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  if (avx512 && leaf71 && (a1 & (1u << 5))) out.push_back("avx512_bf16");
  if (avx512 && leaf7 && (d0 & (1u << 23))) out.push_back("avx512_fp16");
  if (leaf7 && (d0 & (1u << 22))) out.push_back("amx_bf16");
  if (leaf71 && (a1 & (1u << 21))) out.push_back("amx_fp16");
#endif
  return out;
}

std::vector<const char*> supported_isas() {
  std::vector<const char*> out;
  for (int i = 0; i < 3; ++i)
    if (cpu_has(static_cast<Isa>(i))) out.push_back(kIsaNames[i]);
  return out;
}

}  // namespace fastconv::cpu
