// workspace.h: per-thread scratch buffers that persist across calls (a small arena per thread).
// OpenMP worker threads live as long as the process, so after the first call of a given size no
// allocation and no first-touch page fault happens on the hot path. Slots keep users apart:
// 0-1 GEMM packing, 2-6 convolution buffers. 64-byte aligned, grow-only.
#pragma once
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
  WS_CONV_PART = 6,  // per-group partial weight gradients (the calling thread's; every group writes its own)
  WS_SLOTS = 7
};

struct WorkspaceFree {
  void operator()(void* p) const { std::free(p); }
};

// Bytes currently held by the calling thread's workspace (for memory accounting in tests and benches).
inline std::size_t& thread_workspace_bytes() {
  thread_local std::size_t bytes = 0;
  return bytes;
}

template <typename T>
inline T* thread_workspace(int slot, std::size_t count) {
  thread_local std::unique_ptr<void, WorkspaceFree> buf[WS_SLOTS];
  thread_local std::size_t cap[WS_SLOTS] = {};
  const std::size_t bytes = ((count * sizeof(T) + 63) / 64) * 64;
  if (bytes > cap[slot]) {
    buf[slot].reset();  // free first so peak memory is not old + new
    thread_workspace_bytes() -= cap[slot];
    cap[slot] = 0;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    buf[slot].reset(p);
    cap[slot] = bytes;
    thread_workspace_bytes() += bytes;
  }
  return static_cast<T*>(buf[slot].get());
}

}  // namespace fastconv::cpu
