// staged.h: how a kernel templated on its storage type T reads and writes values in its compute type A =
// compute_t<T> (common/half.h): for float and double these are the arrays themselves (no copy, no extra code:
// the kernel's arithmetic is exactly what it was before 16-bit types existed); for f16 / bf16 a row, tile or
// small operand is widened (exactly) into a float buffer when the kernel reaches it, and a result computed in
// a float buffer is rounded once into the 16-bit array when the kernel has finished that row or tile
// (cpu/half_convert.h's row conversions). The sequence and attention kernels (rnn.cpp, attention.cpp,
// sdpa.cpp) use these so that one body serves every type.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/half.h"
#include "cpu/half_convert.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

// A whole input of n values in compute_t<T>, widened once when constructed (for the operands every step or
// every row of a call reads again: weights, biases, initial states), or the array itself. p may be null.
template <typename T>
class Widened {
 public:
  using A = compute_t<T>;
  Widened(const T* p, std::int64_t n) {
    if constexpr (is_staged_v<T>) {
      if (p) {
        buf_ = std::make_unique<Scratch<A>>(static_cast<std::size_t>(n));
        widen(p, buf_->data(), n);
        ptr_ = buf_->data();
      }
    } else {
      ptr_ = p;
    }
  }
  const A* data() const { return ptr_; }

 private:
  std::unique_ptr<Scratch<A>> buf_;
  const A* ptr_ = nullptr;
};

// A whole output of n values computed in compute_t<T>: the array itself, or a float scratch whose ranges the
// kernel rounds into the array with store() when their values are final (ranges stored from several threads
// must not overlap).
template <typename T>
class Narrowed {
 public:
  using A = compute_t<T>;
  Narrowed(T* p, std::int64_t n) : out_(p) {
    if constexpr (is_staged_v<T>) {
      buf_ = std::make_unique<Scratch<A>>(static_cast<std::size_t>(n));
      work_ = buf_->data();
    } else {
      work_ = p;
    }
  }
  A* data() { return work_; }
  void store(std::int64_t i0, std::int64_t n) {
    if constexpr (is_staged_v<T>) narrow(work_ + i0, out_ + i0, n);
  }

 private:
  T* out_;
  std::unique_ptr<Scratch<A>> buf_;
  A* work_ = nullptr;
};

// One thread's buffer for rows or tiles of up to n values of an input: load() returns the values in
// compute_t<T> (the input itself for float and double).
template <typename T>
class InTile {
 public:
  using A = compute_t<T>;
  explicit InTile(std::int64_t n) : buf_(is_staged_v<T> ? static_cast<std::size_t>(n) : 0) {}
  const A* load(const T* p, std::int64_t n) {
    if constexpr (is_staged_v<T>) {
      widen(p, buf_.data(), n);
      return buf_.data();
    } else {
      (void)n;
      return p;
    }
  }

 private:
  std::vector<A> buf_;
};

// One thread's buffer for a row or tile of up to n values of an output: at(p) is where the kernel computes it
// (p itself for float and double), store(p, n) rounds it into p once it is final.
template <typename T>
class OutTile {
 public:
  using A = compute_t<T>;
  explicit OutTile(std::int64_t n) : buf_(is_staged_v<T> ? static_cast<std::size_t>(n) : 0) {}
  A* at(T* p) {
    if constexpr (is_staged_v<T>) return buf_.data();
    else return p;
  }
  void store(T* p, std::int64_t n) {
    if constexpr (is_staged_v<T>) narrow(buf_.data(), p, n);
    else (void)p, (void)n;
  }

 private:
  std::vector<A> buf_;
};

}  // namespace fastconv::cpu
