// module_cpu.cpp: fastconv._cpu. Each op registers its own bindings (bindings/<op>.cpp); this file adds the
// build and threading queries.
#include <pybind11/pybind11.h>

#include "bindings/bind_util.h"
#include "cpu/conv_amx.h"
#include "cpu/isa.h"
#include "cpu/threads.h"
#include "cpu/workspace.h"

namespace py = pybind11;
using namespace fastconv;

namespace fastconv::bind {
void bind_optim(py::module_& m);  // bindings/optim.cpp
void bind_peak(py::module_& m);  // bindings/peak.cpp
void bind_rnn(py::module_& m);        // bindings/rnn.cpp
void bind_embedding(py::module_& m);  // bindings/embedding.cpp
void bind_time_loss(py::module_& m);  // bindings/time_loss.cpp
void bind_attention(py::module_& m);  // bindings/attention.cpp
void bind_layernorm(py::module_& m);  // bindings/layernorm.cpp
void bind_sdpa(py::module_& m);       // bindings/sdpa.cpp
void bind_half(py::module_& m);       // bindings/half.cpp
void bind_vecmath(py::module_& m);    // bindings/vecmath.cpp
}  // namespace fastconv::bind

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "fastconv CPU kernels (float32 / float64). Use fastconv.ops, which validates arguments.";
  m.def("build_info", [] {
    py::dict d;
    d["version"] = FASTCONV_VERSION;
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#else
    d["compiler"] = "unknown";
#endif
    d["openmp"] = cpu::openmp_enabled();
    d["cuda_built"] = bool(FASTCONV_CUDA_BUILT);
    d["cuda_status"] = FASTCONV_CUDA_STATUS;
    d["sanitizers"] = FASTCONV_SANITIZE_STR;
    d["avx512_emulated"] = bool(FASTCONV_EMULATE_AVX512);
    py::list isas;
    for (const char* s : cpu::compiled_isas()) isas.append(s);
    d["simd_compiled"] = isas;
    return d;
  }, "Compile-time facts: version, compiler, OpenMP, CUDA, the ISAs the GEMM micro-kernels were built for.");
  m.def("get_num_threads", &cpu::num_threads, "Threads used by every kernel.");
  m.def("set_num_threads", &cpu::set_num_threads, py::arg("n"),
        "Set the threads used by every kernel, clamped to [1, thread_limit()] (to 1 in a forked child).");
  m.def("thread_limit", &cpu::thread_limit, "Most threads: 4 per CPU this process may run on, at least 16.");
  m.def("forked_child", &cpu::forked_child,
        "True in a process forked after this module was loaded; its kernels run on 1 thread.");
  m.def("cpu_isa", [] { return std::string(cpu::active_isa_name()); },
        "The GEMM micro-kernel ISA in use (chosen from CPUID, or forced by FASTCONV_ISA).");
  m.def("supported_isas", [] {
    py::list l;
    for (const char* s : cpu::supported_isas()) l.append(s);
    return l;
  }, "ISAs compiled into this build and supported by this CPU (every one can be forced with set_cpu_isa).");
  m.def("cpu_features", [] {
    py::list l;
    for (const char* s : cpu::cpu_features()) l.append(s);
    return l;
  }, "Reduced-precision arithmetic this CPU reports (f16c, avx512_bf16, avx512_fp16, amx_bf16, amx_fp16).");
  m.def("set_cpu_isa", [](const std::string& isa) { cpu::set_isa(isa); }, py::arg("isa"),
        "Force the GEMM micro-kernel ISA: 'avx512', 'avx2' or 'scalar'. Raises ValueError if the CPU or the "
        "build lacks it.");

  m.def("amx_mode", [] { return std::string(cpu::amx_mode_name()); },
        "How the 16-bit convolutions (and the bfloat16 GEMM) run the tile program: 'amx', 'avx512_bf16', "
        "'emulated' (tests) or 'off' (FASTCONV_AMX).");
  m.def("amx_calls", [] { return cpu::amx_calls(); },
        "bfloat16 and float16 convolution (forward or backward) and bfloat16 GEMM calls run by the tile program, "
        "in any mode but off, since import (tests).");
  m.def("set_amx_mode", [](const std::string& mode) { cpu::set_amx_mode(mode); }, py::arg("mode"),
        "Force the tile mode of the 16-bit convolutions and the bfloat16 GEMM: 'off', 'amx' (ValueError where "
        "the CPU or OS lacks AMX-BF16), 'avx512_bf16' (ValueError without AVX512_BF16) or 'emulated' (scalar "
        "code, for tests).");

  m.def("avx512_tile", [] { return std::string(cpu::avx512_tile_name()); },
        "The AVX-512 float32 GEMM micro-kernel's tile, '16x16' or '12x32' (chosen per CPU, or forced by "
        "FASTCONV_GEMM_TILE); used while cpu_isa() is 'avx512'.");
  m.def("avx512_tiles", [] {
    py::list l;
    for (const char* s : cpu::avx512_tiles()) l.append(s);
    return l;
  }, "Every AVX-512 float32 GEMM tile this build has (each can be forced with set_avx512_tile).");
  m.def("set_avx512_tile", [](const std::string& tile) { cpu::set_avx512_tile(tile); }, py::arg("tile"),
        "Force the AVX-512 float32 GEMM tile: '16x16' or '12x32'. Raises ValueError if unknown.");

  m.def("workspace_bytes", [] {
    py::dict d;
    d["current"] = cpu::scratch_bytes_current();
    d["peak"] = cpu::scratch_bytes_peak();
    return d;
  }, "Kernel scratch memory (all threads: per-thread arenas kept across calls plus per-call packed operands), "
     "in bytes: {'current', 'peak'}; the peak since the last reset_workspace_peak(). NumPy arrays not included.");
  m.def("reset_workspace_peak", &cpu::scratch_reset_peak,
        "Start a new peak measurement for workspace_bytes(): peak = bytes held now.");

  bind::bind_gemm(m);
  bind::bind_im2col(m);
  bind::bind_conv(m);
  bind::bind_zeropad(m);
  bind::bind_affine(m);
  bind::bind_pool(m);
  bind::bind_activation(m);
  bind::bind_loss(m);
  bind::bind_dropout(m);
  bind::bind_batchnorm(m);
  bind::bind_spatial_batchnorm(m);
  bind::bind_global_pool(m);
  bind::bind_upsample(m);
  bind::bind_optim(m);
  bind::bind_peak(m);
  bind::bind_rnn(m);
  bind::bind_embedding(m);
  bind::bind_time_loss(m);
  bind::bind_attention(m);
  bind::bind_layernorm(m);
  bind::bind_sdpa(m);
  bind::bind_half(m);
  bind::bind_vecmath(m);
}
