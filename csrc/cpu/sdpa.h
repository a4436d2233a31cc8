// sdpa.h: scaled dot-product attention of many independent heads (Vaswani et al. 2017, eq. 1), the core of
// Keras' MultiHeadAttention and torch.nn.MultiheadAttention. Shape letters: B = batch * heads independent
// problems, L query steps, S key/value steps, E query/key features, F value features. q (B, L, E), k (B, S,
// E), v (B, S, F), p (B, L, S), out (B, L, F), all row-major. p = softmax_s(scale * q k^T); out = p v, or
// (p * mask) v where mask (B, L, S) holds the attention dropout's factors (0 or 1 / (1 - rate)). T is float,
// double, f16 or bf16 (the 16-bit types compute in float32, rounding each output once).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// p and out are overwritten; mask may be null (no dropout).
template <typename T>
void sdpa_forward(const T* q, const T* k, const T* v, const T* mask, T* p, T* out, std::int64_t B,
                  std::int64_t L, std::int64_t S, std::int64_t E, std::int64_t F, double scale);

// dq (B, L, E), dk (B, S, E), dv (B, S, F) for the gradient dout (B, L, F) of out; p is the forward's.
template <typename T>
void sdpa_backward(const T* q, const T* k, const T* v, const T* p, const T* mask, const T* dout, T* dq, T* dk,
                   T* dv, std::int64_t B, std::int64_t L, std::int64_t S, std::int64_t E, std::int64_t F,
                   double scale);

}  // namespace fastconv::cpu
