// embedding.h: rows of a table picked by integer ids (the sequel's Embedding / TimeEmbedding). W (V, D),
// idx int64 (M,) with every id in [0, V) (the binding checks them with first_bad_label, cpu/loss.h), out and
// dout (M, D) row-major: M is N for one step, N*T for whole sequences.
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// out[m] = W[idx[m]]
template <typename T>
void embedding_forward(const T* w, const std::int64_t* idx, T* out, std::int64_t M, std::int64_t D);

// dW = 0, then dW[idx[m]] += dout[m] for m in order (repeated ids accumulate)
template <typename T>
void embedding_backward(const T* dout, const std::int64_t* idx, T* dw, std::int64_t M, std::int64_t V,
                        std::int64_t D);

}  // namespace fastconv::cpu
