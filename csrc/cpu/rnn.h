// rnn.h: recurrent cells over whole sequences, forward and backward through time in one call each: the simple
// RNN (tanh), the LSTM (gate columns f, g, i, o) and the GRU (gate columns z, r, h), in the layouts of the
// book sequel's common/time_layers.py, and Keras 3's GRU (reset_after=True, the same columns). Shape letters:
// N sequences of L steps (the sequel's T; T here is the element type), D input features, H hidden units, G
// gates (1, 4, 3). xs (N, L, D), Wx (D, G*H), Wh (H, G*H), b (G*H,), h0 / c0 / dh0 / dc0 (N, H), hs / cs (N,
// L, H), gates / dA (N, L, G*H), all row-major. T is float, double, f16 or bf16 (the 16-bit types compute in
// float32 and keep the recurrence in float32 scratch: rnn.cpp).
#pragma once
#include "cpu/gemm/gemm.h"

namespace fastconv::cpu {

// hs = tanh(x_t Wx + h_{t-1} Wh + b) for every t.
template <typename T>
void rnn_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, T* hs, index_t N, index_t L,
                 index_t D, index_t H, int nthreads);

// dxs, dWx, dWh, db, dh0 (the gradient of h0) are overwritten.
template <typename T>
void rnn_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* dhs, T* dxs,
                  T* dwx, T* dwh, T* db, T* dh0, index_t N, index_t L, index_t D, index_t H, int nthreads);

// hs, cs (the cell states) and gates (the activated f, g, i, o of every step, kept for the backward pass).
template <typename T>
void lstm_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, const T* c0, T* hs, T* cs,
                  T* gates, index_t N, index_t L, index_t D, index_t H, int nthreads);

// dc_last (N, H) is the gradient of the last cell state (zeros for the sequel's TimeLSTM, dc_next for one
// LSTM step).
template <typename T>
void lstm_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* c0, const T* hs, const T* cs,
                   const T* gates, const T* dhs, const T* dc_last, T* dxs, T* dwx, T* dwh, T* db, T* dh0,
                   T* dc0, index_t N, index_t L, index_t D, index_t H, int nthreads);

// hs, gates (the activated z, r and candidate of every step) and rh = r * h_{t-1} (N, L, H), kept for
// backward.
template <typename T>
void gru_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, T* hs, T* gates, T* rh,
                 index_t N, index_t L, index_t D, index_t H, int nthreads);

template <typename T>
void gru_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* gates,
                  const T* rh, const T* dhs, T* dxs, T* dwx, T* dwh, T* db, T* dh0, index_t N, index_t L,
                  index_t D, index_t H, int nthreads);

// The GRU of Keras 3 and cuDNN (reset_after=True): z = sig(x Wz + bz + h Uz + cz), r = sig(x Wr + br + h Ur +
// cr), h~ = tanh(x Wh + bh + r * (h Uh + ch)), h = z * h_{t-1} + (1 - z) * h~, gate columns (z, r, h), bx the
// input bias and bh the recurrent one (3H each). gates keeps the activated z, r, h~ and rec (N, L, H) the
// candidate's recurrent term h Uh + ch of every step, for the backward pass.
template <typename T>
void gru_reset_after_forward(const T* xs, const T* wx, const T* wh, const T* bx, const T* bh, const T* h0,
                             T* hs, T* gates, T* rec, index_t N, index_t L, index_t D, index_t H,
                             int nthreads);

// dxs, dWx, dWh, dbx, dbh and dh0 are overwritten.
template <typename T>
void gru_reset_after_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* gates,
                              const T* rec, const T* dhs, T* dxs, T* dwx, T* dwh, T* dbx, T* dbh, T* dh0,
                              index_t N, index_t L, index_t D, index_t H, int nthreads);

}  // namespace fastconv::cpu
