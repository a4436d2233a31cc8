// time_loss.h: softmax + cross-entropy over the steps of sequences, skipping an ignore label (the sequel's
// TimeSoftmaxWithLoss). x, y, dx are (M, V) row-major with M = N*T rows; t is int64 (M,), each label in [0,
// V) or equal to ignore_label (the binding checks them).
#pragma once
#include <cstdint>

namespace fastconv::cpu {

// y = softmax(x) for every row; returns the sum of -log y[m, t[m]] over the rows whose label is not
// ignore_label (computed as log(sum exp(x - max)) + max - x[t] in double, so it is finite where y
// underflows), and writes the number of those rows to *kept.
template <typename T>
double time_softmax_ce_forward(const T* x, const std::int64_t* t, T* y, std::int64_t M, std::int64_t V,
                               std::int64_t ignore_label, std::int64_t* kept);

// dx = (y - onehot(t)) * scale for kept rows, 0 for ignored ones (scale is dout / kept).
template <typename T>
void time_softmax_ce_backward(const T* y, const std::int64_t* t, T* dx, std::int64_t M, std::int64_t V,
                              std::int64_t ignore_label, double scale);

// -1 if every label is in [0, V) or equal to ignore_label, else the first index where it is not.
std::int64_t first_bad_time_label(const std::int64_t* t, std::int64_t M, std::int64_t V,
                                  std::int64_t ignore_label);

}  // namespace fastconv::cpu
