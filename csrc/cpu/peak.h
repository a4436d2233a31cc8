// peak.h: the machine's measured floating-point peak (GFLOP/s), the denominator of every "% of peak" figure
// in bench/. One tight loop of independent multiply-add chains per ISA and element type, run by `threads`
// OpenMP threads at once (each thread its own chains). 2 flops per FMA lane.
#pragma once
#include <string>

namespace fastconv::cpu {

// Best GFLOP/s over repeated runs lasting about `seconds` in total. `dtype` is "float32" or "float64";
// `isa` is "avx512", "avx2" or "scalar" and must be supported by this CPU and build (supported_isas(), cpu/isa.h).
// Throws std::invalid_argument naming the argument on bad input.
double fma_peak(const std::string& dtype, int threads, const std::string& isa, double seconds);

}  // namespace fastconv::cpu
