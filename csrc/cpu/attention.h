// attention.h: the dot-product attention of the book sequel's ch08 (attention_layer.py). Shape letters: N
// sequences, S encoder steps, L decoder steps, H features. Encoder states hs / enc (N, S, H), a decoder state
// h (N, H) or decoder states dec (N, L, H), weights a (N, S) or (N, L, S), contexts c (N, H) or out (N, L,
// H). T is float, double, f16 or bf16 (the 16-bit types compute in float32, rounding each output once).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// WeightSum: c[n] = sum_s a[n, s] hs[n, s]
template <typename T>
void weight_sum_forward(const T* hs, const T* a, T* c, std::int64_t N, std::int64_t S, std::int64_t H);
// dhs[n, s] = a[n, s] dc[n]; da[n, s] = hs[n, s] . dc[n]
template <typename T>
void weight_sum_backward(const T* hs, const T* a, const T* dc, T* dhs, T* da, std::int64_t N, std::int64_t S,
                         std::int64_t H);

// AttentionWeight: a[n] = softmax_s(hs[n, s] . h[n])
template <typename T>
void attention_weight_forward(const T* hs, const T* h, T* a, std::int64_t N, std::int64_t S, std::int64_t H);
// ds = a * (da - sum_s a da); dhs[n, s] = ds[n, s] h[n]; dh[n] = sum_s ds[n, s] hs[n, s]
template <typename T>
void attention_weight_backward(const T* hs, const T* h, const T* a, const T* da, T* dhs, T* dh,
                               std::int64_t N, std::int64_t S, std::int64_t H);

// TimeAttention over every decoder step at once: a[n] = softmax(dec[n] @ enc[n]^T) (L, S), out[n] = a[n] @
// enc[n].
template <typename T>
void attention_forward(const T* enc, const T* dec, T* a, T* out, std::int64_t N, std::int64_t S,
                       std::int64_t L, std::int64_t H);
// denc (N, S, H) and ddec (N, L, H) for the gradient dout (N, L, H) of out.
template <typename T>
void attention_backward(const T* enc, const T* dec, const T* a, const T* dout, T* denc, T* ddec,
                        std::int64_t N, std::int64_t S, std::int64_t L, std::int64_t H);

}  // namespace fastconv::cpu
