// vecmath.cpp: the baseline (x86-64 / portable) variant of vecmath.h and the dispatch on the ISA in use,
// read per call (one relaxed atomic load), so set_cpu_isa switches it too.
#include "cpu/vecmath.h"

#include "cpu/isa.h"
#include "cpu/vecmath_simd.h"

namespace fastconv::cpu {

namespace {
const VecMath kBase = vecmath_simd();
#if FASTCONV_HAVE_X86_UKR
const VecMath kAvx2 = vecmath_avx2();
const VecMath kAvx512 = vecmath_avx512();
#endif
}  // namespace

const VecMath& vecmath() {
#if FASTCONV_HAVE_X86_UKR
  switch (active_isa()) {
    case Isa::avx512: return kAvx512;
    case Isa::avx2: return kAvx2;
    default: return kBase;
  }
#else
  return kBase;
#endif
}

}  // namespace fastconv::cpu
