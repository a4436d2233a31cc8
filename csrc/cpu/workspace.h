// workspace.h: per-thread scratch buffers that persist across calls (a small arena per thread).
// OpenMP worker threads live as long as the process, so after the first call of a given size no
// allocation and no first-touch page fault happens on the hot path. Slots keep users apart:
// 0-1 GEMM packing, 2-6 convolution buffers. 64-byte aligned, grow-only.
// Accounting: every byte the kernels hold as scratch (these arenas and the per-call Scratch buffers) is
// counted process-wide, current and peak (resettable), for fastconv._cpu.workspace_bytes() and
// bench/bench_memory.py; NumPy buffers are not included (tracemalloc sees those).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace fastconv::cpu {

enum WorkspaceSlot : int {
  WS_GEMM_B = 0,
  WS_GEMM_A = 1,
  WS_CONV_COL = 2,
  WS_CONV_DCOL = 3,
  WS_CONV_ROW = 4,
  WS_CONV_BPACK = 5,
  WS_CONV_PART = 6,  // per-slot partial weight gradients (the calling thread's; every slot writes its own)
  WS_SLOTS = 7
};

// ------------------------------------------------------------------------------------------------------
// process-wide accounting of kernel scratch (all threads)

inline std::atomic<std::size_t> g_scratch_current{0}, g_scratch_peak{0};

inline void scratch_account(std::size_t add, std::size_t sub) {
  const std::size_t now = g_scratch_current.fetch_add(add) + add;
  g_scratch_current.fetch_sub(sub);
  std::size_t peak = g_scratch_peak.load();
  while (now > peak && !g_scratch_peak.compare_exchange_weak(peak, now)) {
  }
}
inline std::size_t scratch_bytes_current() { return g_scratch_current.load(); }
inline std::size_t scratch_bytes_peak() { return g_scratch_peak.load(); }
// Starts a new measurement window: peak = what is held now.
inline void scratch_reset_peak() { g_scratch_peak.store(g_scratch_current.load()); }

// Bytes currently held by the calling thread's workspace (for memory accounting in tests and benches).
inline std::size_t& thread_workspace_bytes() {
  thread_local std::size_t bytes = 0;
  return bytes;
}

// A per-call aligned scratch array of n values (operands packed once per call), counted like the arenas.
template <typename T>
class Scratch {
 public:
  explicit Scratch(std::size_t n, bool zero = false) : bytes_(((n * sizeof(T) + 63) / 64) * 64) {
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes_ == 0 ? 64 : bytes_));
    if (!p_) throw std::bad_alloc();
    scratch_account(bytes_, 0);
    if (zero) std::fill(p_, p_ + n, T(0));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::free(p_);
    scratch_account(0, bytes_);
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](std::size_t i) { return p_[i]; }

 private:
  std::size_t bytes_;
  T* p_;
};

// One thread's buffers; freed (and un-counted) when the thread exits.
struct WorkspaceArena {
  void* buf[WS_SLOTS] = {};
  std::size_t cap[WS_SLOTS] = {};
  WorkspaceArena() = default;
  WorkspaceArena(const WorkspaceArena&) = delete;
  WorkspaceArena& operator=(const WorkspaceArena&) = delete;
  ~WorkspaceArena() {
    for (int s = 0; s < WS_SLOTS; ++s) {
      std::free(buf[s]);
      scratch_account(0, cap[s]);
    }
  }
};

template <typename T>
inline T* thread_workspace(int slot, std::size_t count) {
  thread_local WorkspaceArena arena;
  const std::size_t bytes = ((count * sizeof(T) + 63) / 64) * 64;
  if (bytes > arena.cap[slot]) {
    std::free(arena.buf[slot]);  // free first so peak memory is not old + new
    arena.buf[slot] = nullptr;
    thread_workspace_bytes() -= arena.cap[slot];
    scratch_account(0, arena.cap[slot]);
    arena.cap[slot] = 0;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    arena.buf[slot] = p;
    arena.cap[slot] = bytes;
    thread_workspace_bytes() += bytes;
    scratch_account(bytes, 0);
  }
  return static_cast<T*>(arena.buf[slot]);
}

}  // namespace fastconv::cpu
