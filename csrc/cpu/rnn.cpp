// rnn.cpp: simple RNN, LSTM and GRU over whole sequences (layouts in rnn.h). Forward: the input projections
// of all N*L steps are ONE GEMM (xs (N*L, D) @ Wx, onto the bias rows), then per step one GEMM accumulates
// h_{t-1} @ Wh onto that step's rows (strided views, no copies; the sequel's GRU makes two, its candidate
// needs r first, Keras' reset-after GRU one) and one pass applies the gate nonlinearities and the state
// update in place. Backward through time runs per step only what depends on the next step's carry (the
// elementwise gate gradients and dh_{t-1} = dA_t @ Wh^T); dWx, dWh, db and dxs are then whole-sequence GEMMs
// over the N*L rows of dA, so nothing is accumulated step by step. Every GEMM is the project's (gemm/gemm.h);
// every element is computed by one thread in a fixed order, so results do not depend on the thread count.
// float16 / bfloat16 (A = compute_t<T> = float; cpu/staged.h): every value the recurrence carries from step
// to step (the gate pre-activations and activations, c, the h fed back into the next step's GEMM) and every
// backward carry (dA, dh, dc) lives in FLOAT32 scratch; 16 bits are only what the caller sees: hs, cs, gates,
// rh / rec, each row rounded once when its step is done, and the gradients. So the forward outputs are the
// float32 recurrence on the same (exactly widened) inputs, rounded once each: no 16-bit rounding enters the
// recurrence, and the error of step t is the float32 error propagated through t Jacobians of the cell (each
// of norm <= |Wh| times the gate derivatives, as for the float32 kernel) plus the one 16-bit rounding of the
// value stored; it does not compound at 2**-11 per step. The backward re-reads the stored 16-bit hs, cs,
// gates, rh / rec (widened exactly, row by row): its gradients are the float32 backward of the forward
// results the caller holds, i.e. of a forward perturbed by one 16-bit rounding per stored value (what any
// layer that keeps its cache in the input's dtype computes), and its carries through time stay in float32.
// Weight gradients are float32 sums over all N*L steps rounded once at the end; xs and the 16-bit operands of
// the whole-sequence GEMMs are widened kStageRows rows at a time, the weights and h0 / c0 once per call (they
// are packed or read at every step anyway).
#include "cpu/rnn.h"

#include <algorithm>
#include <cmath>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/dtype.h"
#include "cpu/fast_exp.h"
#include "cpu/staged.h"
#include "cpu/threads.h"
#include "cpu/workspace.h"

namespace fastconv::cpu {

namespace {

// Below this many multiply-adds (a whole call's recurrent GEMMs) the time loop stays on one thread.
constexpr index_t kGemmParallelMin = 1 << 18;

// The per-step recurrent GEMM C (M, N, row stride ldc) = A (M, K) @ B + beta * C with B (K, N) the same for
// every step (Wh or a transposed slice of it): B is packed once per call and shared read-only by all L steps
// and all threads, instead of being packed again by every step's gemm() (Wh is 650 x 2600 floats in the
// sequel's BetterRnnlm, while a step's A is only the batch's 20 rows). run() is serial: the threads split the
// batch (for_row_blocks), each with its own packed A.
template <typename T>
class PackedB {
 public:
  PackedB(index_t N, index_t K, const T* B, index_t rsb, index_t csb)
      : u_(active_ukr<T>()), N_(N), K_(K), kc_(gemm_kc<T>()), npad_(round_up(N, u_.nr)),
        bpack_(static_cast<std::size_t>(npad_ * K)) {
    pack_b_full(u_, K, N, B, rsb, csb, bpack_.data());
  }

  // Elements of the packed-A buffer run() needs for M rows.
  std::size_t apack_elems(index_t M) const { return static_cast<std::size_t>(round_up(M, u_.mr) * K_); }

  // C (M, N) = A (M, K, row stride rsa) @ B + beta * C, on the calling thread; apack has apack_elems(M).
  void run(index_t M, const T* A, index_t rsa, T beta, T* C, index_t ldc, T* apack) const {
    const index_t mpad = round_up(M, u_.mr);
    pack_a_full(u_, M, K_, A, rsa, 1, apack);
    // loop 4 around micro-kernel: pc += KC (the same K blocks, so the same sums, for any split of the rows)
    for (index_t pc = 0; pc < K_; pc += kc_) {
      const index_t kc = std::min(kc_, K_ - pc);
      macro_kernel<T>(u_, M, N_, kc, T(1), apack + mpad * pc, bpack_.data() + npad_ * pc,
                      pc == 0 ? beta : T(1), C, ldc);
    }  // end loop 4
  }

 private:
  const Ukr<T>& u_;
  index_t N_, K_, kc_, npad_;
  Scratch<T> bpack_;
};

// The sequences of the batch are independent through time (step t of sequence n needs only its own step t-1),
// so the whole time loop runs on disjoint blocks of rows [n0, n1), one per thread, with no barrier between
// steps: a barrier per step (a parallel GEMM and gate pass per step) cost 7x on a host whose cores are shared
// (measured: BetterRnnlm's LSTM forward 1016 ms on 2 threads vs 142 ms on 1, load average 6 on 2 CPUs).
// Each element is computed by the same operations in the same order whatever the blocks.
// Splitting the hidden units instead (one barrier per step, each thread packing only its columns of Wh, so that
// Wh's traffic per step is split between the cores rather than repeated by each) gave the same bits but no
// gain: BetterRnnlm's step (N 20, H 650) on 2 threads, the two splits alternated in one process, 406 / 418 ms
// (best / median of 6) by rows against 401 / 431 by units (Intel Xeon, Emerald Rapids); single LSTMs 0.92 to
// 1.10x. It was not kept.
template <typename F>
void for_row_blocks(index_t N, index_t work, int nthreads, const F& body) {
  const int nt = work < kGemmParallelMin ? 1 : static_cast<int>(std::min<index_t>(nthreads, N));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#ifdef _OPENMP
    const index_t t = omp_get_thread_num(), n = omp_get_num_threads();
#else
    const index_t t = 0, n = 1;
#endif
    const index_t n0 = N * t / n, n1 = N * (t + 1) / n;
    if (n0 < n1) body(n0, n1);
  }
}

// Rows of a 16-bit operand widened per block of the whole-sequence GEMMs (a block of xs is kStageRows * D
// floats): the conversion happens block by block as the GEMMs reach the rows, never as a pass of its own.
constexpr index_t kStageRows = 512;

// out (M, GH) = b (every row) + x (M, D) @ W (D, GH): the input projections of every step in one GEMM, in
// compute_t<T>. A 16-bit x is widened kStageRows rows at a time, each block one float GEMM over the same
// K = D (so every element is the same float32 sum as one GEMM of all the rows makes).
template <typename T>
void project_inputs(const T* x, const compute_t<T>* w, const compute_t<T>* b, compute_t<T>* out, index_t M,
                    index_t D, index_t GH, int nthreads) {
  using A = compute_t<T>;
  for (index_t m = 0; m < M; ++m) std::copy(b, b + GH, out + m * GH);
  if constexpr (!is_staged_v<T>) {
    gemm<T>(M, GH, D, T(1), x, D, 1, w, GH, 1, T(1), out, GH, nthreads);
  } else {
    Scratch<A> xb(static_cast<std::size_t>(std::min(M, kStageRows) * D));
    for (index_t m0 = 0; m0 < M; m0 += kStageRows) {
      const index_t mb = std::min(kStageRows, M - m0);
      widen(x + m0 * D, xb.data(), mb * D);
      gemm<A>(mb, GH, D, A(1), xb.data(), D, 1, w, GH, 1, A(1), out + m0 * GH, GH, nthreads);
    }
  }
}

// The state entering step t: h0 (row stride H) at t = 0, else row t-1 of hs (row stride L*H).
template <typename T>
struct Prev {
  const T* p;
  index_t ld;
};
template <typename T>
inline Prev<T> prev_state(const T* h0, const T* hs, index_t t, index_t L, index_t H) {
  return t == 0 ? Prev<T>{h0, H} : Prev<T>{hs + (t - 1) * H, L * H};
}

// out (N, L, H) in compute_t<T>: the state entering every step, h0 then hs shifted by one step (for the dWh
// GEMM); 16-bit states are widened in this copy.
template <typename T>
void shifted_states(const T* h0, const T* hs, compute_t<T>* out, index_t N, index_t L, index_t H) {
  for (index_t n = 0; n < N; ++n) {
    load_row(h0 + n * H, out + n * L * H, H);
    load_row(hs + n * L * H, out + (n * L + 1) * H, (L - 1) * H);
  }
}

// C (M, GH, row stride ldc) = A^T @ dA for A (rows, M) and dA (rows, GH, row stride ldd): a weight gradient
// summed over every step of every sequence by one GEMM, in compute_t<T>. A 16-bit A is widened kStageRows
// rows at a time and the blocks' products are summed into C in row order: float32 accumulation over all the
// steps, C rounded once by the caller.
template <typename T>
void weight_grad(const T* a, index_t M, const compute_t<T>* da, index_t ldd, index_t GH, index_t rows,
                 compute_t<T>* c, index_t ldc, int nthreads) {
  using A = compute_t<T>;
  if constexpr (!is_staged_v<T>) {
    gemm<T>(M, GH, rows, T(1), a, 1, M, da, ldd, 1, T(0), c, ldc, nthreads);
  } else {
    Scratch<A> ab(static_cast<std::size_t>(std::min(rows, kStageRows) * M));
    for (index_t r0 = 0; r0 < rows; r0 += kStageRows) {
      const index_t rb = std::min(kStageRows, rows - r0);
      widen(a + r0 * M, ab.data(), rb * M);
      gemm<A>(M, GH, rb, A(1), ab.data(), 1, M, da + r0 * ldd, ldd, 1, r0 == 0 ? A(0) : A(1), c, ldc,
              nthreads);
    }
  }
}

// The gradients every cell finishes with, from dA (NL, GH): dWx = xs^T dA, db = column sums of dA (each
// column summed in row order by one thread) and dxs = dA Wx^T (a 16-bit dxs computed kStageRows rows at a
// time in float and rounded once).
template <typename T>
void input_grads(const T* xs, const compute_t<T>* wx, const compute_t<T>* da, T* dxs, compute_t<T>* dwx,
                 compute_t<T>* db, index_t NL, index_t D, index_t GH, int nthreads) {
  using A = compute_t<T>;
  weight_grad(xs, D, da, GH, GH, NL, dwx, GH, nthreads);
  if constexpr (!is_staged_v<T>) {
    gemm<T>(NL, D, GH, T(1), da, GH, 1, wx, 1, GH, T(0), dxs, D, nthreads);  // B(k, j) = wx[j*GH + k]
  } else {
    Scratch<A> xb(static_cast<std::size_t>(std::min(NL, kStageRows) * D));
    for (index_t m0 = 0; m0 < NL; m0 += kStageRows) {
      const index_t mb = std::min(kStageRows, NL - m0);
      gemm<A>(mb, D, GH, A(1), da + m0 * GH, GH, 1, wx, 1, GH, A(0), xb.data(), D, nthreads);
      narrow(xb.data(), dxs + m0 * D, mb * D);
    }
  }
  std::fill(db, db + GH, A(0));
  for (index_t m = 0; m < NL; ++m)
    for (index_t j = 0; j < GH; ++j) db[j] += da[m * GH + j];
}

// The weight and input gradients of a cell whose dA (N*L, GH) is the gradient of x Wx + h_{t-1} Wh + b (the
// RNN and the LSTM): dWh = h_{t-1}^T dA over every step, then input_grads; each weight gradient is rounded
// once, when it is complete.
template <typename T>
void cell_grads(const T* xs, const compute_t<T>* wx, const T* h0, const T* hs, const compute_t<T>* da, T* dxs,
                T* dwx, T* dwh, T* db, index_t N, index_t L, index_t D, index_t H, index_t GH, int nthreads) {
  using A = compute_t<T>;
  Scratch<A> hprev(static_cast<std::size_t>(N * L * H));
  shifted_states(h0, hs, hprev.data(), N, L, H);
  Narrowed<T> dw_x(dwx, D * GH), dw_h(dwh, H * GH), d_b(db, GH);
  weight_grad(static_cast<const A*>(hprev.data()), H, da, GH, GH, N * L, dw_h.data(), GH, nthreads);
  input_grads(xs, wx, da, dxs, dw_x.data(), d_b.data(), N * L, D, GH, nthreads);
  dw_x.store(0, D * GH);
  dw_h.store(0, H * GH);
  d_b.store(0, GH);
}

}  // namespace

// -----------------------------------------------------------------------------------------------------------
// simple RNN: the pre-activations are built in hs (its float scratch for 16-bit types) and replaced by their
// tanh step by step

template <typename T>
void rnn_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, T* hs, index_t N, index_t L,
                 index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const Widened<T> w_x(wx, D * H), w_h(wh, H * H), bias(b, H), h_0(h0, N * H);
  Narrowed<T> h(hs, N * L * H);
  project_inputs(xs, w_x.data(), bias.data(), h.data(), N * L, D, H, nthreads);
  const PackedB<A> rec(H, H, w_h.data(), H, 1);
  for_row_blocks(N, N * L * H * H, nthreads, [&](index_t n0, index_t n1) {
    Scratch<A> ap(rec.apack_elems(n1 - n0));
    for (index_t t = 0; t < L; ++t) {
      const Prev<A> hp = prev_state(h_0.data(), static_cast<const A*>(h.data()), t, L, H);
      // hs[n0:n1, t, :] (row stride L*H) += h_{t-1} @ Wh
      rec.run(n1 - n0, hp.p + n0 * hp.ld, hp.ld, A(1), h.data() + n0 * L * H + t * H, L * H, ap.data());
      for (index_t n = n0; n < n1; ++n) {
        A* hr = h.data() + (n * L + t) * H;
        tanh_to(hr, hr, H);
        h.store((n * L + t) * H, H);
      }
    }
  });
}

template <typename T>
void rnn_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* dhs, T* dxs,
                  T* dwx, T* dwh, T* db, T* dh0, index_t N, index_t L, index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const Widened<T> w_x(wx, D * H), w_h(wh, H * H);
  Scratch<A> da(static_cast<std::size_t>(N * L * H)), carry(static_cast<std::size_t>(N * H), true);
  const PackedB<A> back(H, H, w_h.data(), 1, H);  // Wh^T: B(k, j) = wh[j*H + k]
  for_row_blocks(N, N * L * H * H, nthreads, [&](index_t n0, index_t n1) {
    Scratch<A> ap(back.apack_elems(n1 - n0));
    InTile<T> h_row(H), dh_row(H);
    for (index_t t = L - 1; t >= 0; --t) {
      for (index_t n = n0; n < n1; ++n) {
        const index_t r = (n * L + t) * H;
        const A* hr = h_row.load(hs + r, H);
        const A* dhr = dh_row.load(dhs + r, H);
        for (index_t j = 0; j < H; ++j) {
          const A h = hr[j];
          da[r + j] = (dhr[j] + carry[n * H + j]) * (A(1) - h * h);
        }
      }
      // carry[n0:n1] = dA_t @ Wh^T
      back.run(n1 - n0, da.data() + n0 * L * H + t * H, L * H, A(0), carry.data() + n0 * H, H, ap.data());
    }
  });
  store_row(carry.data(), dh0, N * H);
  cell_grads(xs, w_x.data(), h0, hs, da.data(), dxs, dwx, dwh, db, N, L, D, H, H, nthreads);
}

// -----------------------------------------------------------------------------------------------------------
// LSTM: gates holds each step's pre-activations, replaced in place by sigmoid(f), tanh(g), sigmoid(i),
// sigmoid(o)

template <typename T>
void lstm_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, const T* c0, T* hs, T* cs,
                  T* gates, index_t N, index_t L, index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const index_t G = 4 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G), bias(b, G), h_0(h0, N * H), c_0(c0, N * H);
  Narrowed<T> hw(hs, N * L * H), cw(cs, N * L * H), gw(gates, N * L * G);
  project_inputs(xs, w_x.data(), bias.data(), gw.data(), N * L, D, G, nthreads);
  const PackedB<A> rec(G, H, w_h.data(), G, 1);
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    Scratch<A> ap(rec.apack_elems(n1 - n0));
    for (index_t t = 0; t < L; ++t) {
      const Prev<A> hp = prev_state(h_0.data(), static_cast<const A*>(hw.data()), t, L, H);
      const Prev<A> cp = prev_state(c_0.data(), static_cast<const A*>(cw.data()), t, L, H);
      // gates[n0:n1, t, :] (row stride L*4H) += h_{t-1} @ Wh
      rec.run(n1 - n0, hp.p + n0 * hp.ld, hp.ld, A(1), gw.data() + n0 * L * G + t * G, L * G, ap.data());
      for (index_t n = n0; n < n1; ++n) {
        A* a = gw.data() + (n * L + t) * G;
        sigmoid_to(a, a, H);                   // f
        tanh_to(a + H, a + H, H);              // g
        sigmoid_to(a + 2 * H, a + 2 * H, 2 * H);  // i, o
        const A* c_prev = cp.p + n * cp.ld;
        A* c = cw.data() + (n * L + t) * H;
        A* h = hw.data() + (n * L + t) * H;
        for (index_t j = 0; j < H; ++j) c[j] = a[j] * c_prev[j] + a[H + j] * a[2 * H + j];
        tanh_to(c, h, H);
        for (index_t j = 0; j < H; ++j) h[j] *= a[3 * H + j];
        gw.store((n * L + t) * G, G);
        cw.store((n * L + t) * H, H);
        hw.store((n * L + t) * H, H);
      }
    }
  });
}

template <typename T>
void lstm_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* c0, const T* hs, const T* cs,
                   const T* gates, const T* dhs, const T* dc_last, T* dxs, T* dwx, T* dwh, T* db, T* dh0,
                   T* dc0, index_t N, index_t L, index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const index_t G = 4 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G);
  Scratch<A> da(static_cast<std::size_t>(N * L * G));
  Scratch<A> dh(static_cast<std::size_t>(N * H), true), dc(static_cast<std::size_t>(N * H));
  load_row(dc_last, dc.data(), N * H);
  Scratch<A> tcs(static_cast<std::size_t>(N * H));  // tanh(c_t) of the step's rows
  const PackedB<A> back(H, G, w_h.data(), 1, G);  // Wh^T: B(k, j) = wh[j*4H + k]
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    Scratch<A> ap(back.apack_elems(n1 - n0));
    InTile<T> g_row(G), c_row(H), cp_row(H), dh_row(H);
    for (index_t t = L - 1; t >= 0; --t) {
      const Prev<T> cp = prev_state(c0, cs, t, L, H);
      for (index_t n = n0; n < n1; ++n) {
        const index_t r = (n * L + t) * H;
        const A* a = g_row.load(gates + (n * L + t) * G, G);
        A* d = da.data() + (n * L + t) * G;
        const A* c_prev = cp_row.load(cp.p + n * cp.ld, H);
        const A* dhr = dh_row.load(dhs + r, H);
        A* tcn = tcs.data() + n * H;
        tanh_to(c_row.load(cs + r, H), tcn, H);
        for (index_t j = 0; j < H; ++j) {
          const A f = a[j], g = a[H + j], i = a[2 * H + j], o = a[3 * H + j];
          const A tc = tcn[j];
          const A dhj = dhr[j] + dh[n * H + j];
          // c reaches the loss through the next cell state and through h = o * tanh(c)
          const A ds = dc[n * H + j] + dhj * o * (A(1) - tc * tc);
          dc[n * H + j] = ds * f;
          d[j] = ds * c_prev[j] * f * (A(1) - f);
          d[H + j] = ds * i * (A(1) - g * g);
          d[2 * H + j] = ds * g * i * (A(1) - i);
          d[3 * H + j] = dhj * tc * o * (A(1) - o);
        }
      }
      // dh[n0:n1] = dA_t @ Wh^T
      back.run(n1 - n0, da.data() + n0 * L * G + t * G, L * G, A(0), dh.data() + n0 * H, H, ap.data());
    }
  });
  store_row(dh.data(), dh0, N * H);
  store_row(dc.data(), dc0, N * H);
  cell_grads(xs, w_x.data(), h0, hs, da.data(), dxs, dwx, dwh, db, N, L, D, H, G, nthreads);
}

// -----------------------------------------------------------------------------------------------------------
// GRU: gates holds z, r (sigmoid) and the candidate (tanh) of each step; the candidate's recurrent term is
// (r * h_{t-1}) @ Whh, so each step makes two GEMMs: h_{t-1} @ [Whz Whr] first, then rh @ Whh once r is known

template <typename T>
void gru_forward(const T* xs, const T* wx, const T* wh, const T* b, const T* h0, T* hs, T* gates, T* rh,
                 index_t N, index_t L, index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const index_t G = 3 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G), bias(b, G), h_0(h0, N * H);
  Narrowed<T> hw(hs, N * L * H), gw(gates, N * L * G), rw(rh, N * L * H);
  project_inputs(xs, w_x.data(), bias.data(), gw.data(), N * L, D, G, nthreads);
  const PackedB<A> rec_zr(2 * H, H, w_h.data(), G, 1), rec_h(H, H, w_h.data() + 2 * H, G, 1);
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    const index_t M = n1 - n0;
    Scratch<A> ap(rec_zr.apack_elems(M));  // K = H for both
    for (index_t t = 0; t < L; ++t) {
      const Prev<A> hp = prev_state(h_0.data(), static_cast<const A*>(hw.data()), t, L, H);
      // gates[n0:n1, t, :2H] += h_{t-1} @ Wh[:, :2H] (row stride 3H)
      rec_zr.run(M, hp.p + n0 * hp.ld, hp.ld, A(1), gw.data() + n0 * L * G + t * G, L * G, ap.data());
      for (index_t n = n0; n < n1; ++n) {
        A* a = gw.data() + (n * L + t) * G;
        sigmoid_to(a, a, 2 * H);  // z, r
        const A* h_prev = hp.p + n * hp.ld;
        A* q = rw.data() + (n * L + t) * H;
        for (index_t j = 0; j < H; ++j) q[j] = a[H + j] * h_prev[j];
        rw.store((n * L + t) * H, H);
      }
      // gates[n0:n1, t, 2H:] += rh_t @ Wh[:, 2H:]
      rec_h.run(M, rw.data() + n0 * L * H + t * H, L * H, A(1), gw.data() + n0 * L * G + t * G + 2 * H, L * G,
                ap.data());
      for (index_t n = n0; n < n1; ++n) {
        A* a = gw.data() + (n * L + t) * G;
        tanh_to(a + 2 * H, a + 2 * H, H);
        const A* h_prev = hp.p + n * hp.ld;
        A* h = hw.data() + (n * L + t) * H;
        for (index_t j = 0; j < H; ++j) h[j] = (A(1) - a[j]) * h_prev[j] + a[j] * a[2 * H + j];
        gw.store((n * L + t) * G, G);
        hw.store((n * L + t) * H, H);
      }
    }
  });
}

template <typename T>
void gru_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* gates,
                  const T* rh, const T* dhs, T* dxs, T* dwx, T* dwh, T* db, T* dh0, index_t N, index_t L,
                  index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const index_t G = 3 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G);
  Scratch<A> da(static_cast<std::size_t>(N * L * G)), drh(static_cast<std::size_t>(N * H));
  Scratch<A> dh(static_cast<std::size_t>(N * H), true), dh_next(static_cast<std::size_t>(N * H));
  const PackedB<A> back_h(H, H, w_h.data() + 2 * H, 1, G);  // Whh^T
  const PackedB<A> back_zr(H, 2 * H, w_h.data(), 1, G);     // [Whz Whr]^T
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    const index_t M = n1 - n0;
    Scratch<A> ap(back_zr.apack_elems(M));  // the larger K (2H) of the two
    InTile<T> g_row(G), hp_row(H), dh_row(H);
    for (index_t t = L - 1; t >= 0; --t) {
      const Prev<T> hp = prev_state(h0, hs, t, L, H);
      // candidate and update gate; dh_next collects the direct path (1 - z) * dh
      for (index_t n = n0; n < n1; ++n) {
        const index_t r = (n * L + t) * H;
        const A* a = g_row.load(gates + (n * L + t) * G, G);
        A* d = da.data() + (n * L + t) * G;
        const A* h_prev = hp_row.load(hp.p + n * hp.ld, H);
        const A* dhr = dh_row.load(dhs + r, H);
        for (index_t j = 0; j < H; ++j) {
          const A z = a[j], hh = a[2 * H + j];
          const A dhj = dhr[j] + dh[n * H + j];
          d[2 * H + j] = dhj * z * (A(1) - hh * hh);
          d[j] = dhj * (hh - h_prev[j]) * z * (A(1) - z);
          dh_next[n * H + j] = dhj * (A(1) - z);
        }
      }
      // drh = dA_h @ Whh^T, the gradient of r * h_{t-1}
      back_h.run(M, da.data() + n0 * L * G + t * G + 2 * H, L * G, A(0), drh.data() + n0 * H, H, ap.data());
      for (index_t n = n0; n < n1; ++n) {
        const A* a = g_row.load(gates + (n * L + t) * G, G);
        A* d = da.data() + (n * L + t) * G;
        const A* h_prev = hp_row.load(hp.p + n * hp.ld, H);
        for (index_t j = 0; j < H; ++j) {
          const A rj = a[H + j], g = drh[n * H + j];
          d[H + j] = g * h_prev[j] * rj * (A(1) - rj);
          dh_next[n * H + j] += g * rj;
        }
      }
      // dh_next += [dA_z dA_r] @ [Whz Whr]^T
      back_zr.run(M, da.data() + n0 * L * G + t * G, L * G, A(1), dh_next.data() + n0 * H, H, ap.data());
      std::copy(dh_next.data() + n0 * H, dh_next.data() + n1 * H, dh.data() + n0 * H);
    }
  });
  store_row(dh.data(), dh0, N * H);
  Scratch<A> hprev(static_cast<std::size_t>(N * L * H));
  shifted_states(h0, hs, hprev.data(), N, L, H);
  Narrowed<T> dw_x(dwx, D * G), dw_h(dwh, H * G), d_b(db, G);
  weight_grad(static_cast<const A*>(hprev.data()), H, da.data(), G, 2 * H, N * L, dw_h.data(), G,
              nthreads);                                                                    // dWh[:, :2H]
  weight_grad(rh, H, da.data() + 2 * H, G, H, N * L, dw_h.data() + 2 * H, G, nthreads);  // dWh[:, 2H:]
  input_grads(xs, w_x.data(), da.data(), dxs, dw_x.data(), d_b.data(), N * L, D, G, nthreads);
  dw_x.store(0, D * G);
  dw_h.store(0, H * G);
  d_b.store(0, G);
}

// -----------------------------------------------------------------------------------------------------------
// GRU with the reset gate applied after the recurrent GEMM (Keras 3's default, cuDNN's GRU): one GEMM per
// step, h_{t-1} @ Wh for all three gates at once, since r multiplies its result instead of its input

template <typename T>
void gru_reset_after_forward(const T* xs, const T* wx, const T* wh, const T* bx, const T* bh, const T* h0,
                             T* hs, T* gates, T* rec, index_t N, index_t L, index_t D, index_t H,
                             int nthreads) {
  using A = compute_t<T>;
  const index_t G = 3 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G), b_x(bx, G), b_h(bh, G), h_0(h0, N * H);
  Narrowed<T> hw(hs, N * L * H), gw(gates, N * L * G), recw(rec, N * L * H);
  project_inputs(xs, w_x.data(), b_x.data(), gw.data(), N * L, D, G, nthreads);
  const PackedB<A> rw(G, H, w_h.data(), G, 1);
  const A* bhv = b_h.data();
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    const index_t M = n1 - n0;
    Scratch<A> ap(rw.apack_elems(M)), u(static_cast<std::size_t>(M * G));  // u: h_{t-1} @ Wh of the rows
    for (index_t t = 0; t < L; ++t) {
      const Prev<A> hp = prev_state(h_0.data(), static_cast<const A*>(hw.data()), t, L, H);
      rw.run(M, hp.p + n0 * hp.ld, hp.ld, A(0), u.data(), G, ap.data());
      for (index_t n = n0; n < n1; ++n) {
        // (z, r, h) pre-activations of the inputs, then the activated gates
        A* a = gw.data() + (n * L + t) * G;
        const A* un = u.data() + (n - n0) * G;
        A* rh = recw.data() + (n * L + t) * H;
        for (index_t j = 0; j < 2 * H; ++j) a[j] += un[j] + bhv[j];
        sigmoid_to(a, a, 2 * H);
        for (index_t j = 0; j < H; ++j) {
          rh[j] = un[2 * H + j] + bhv[2 * H + j];
          a[2 * H + j] += a[H + j] * rh[j];
        }
        tanh_to(a + 2 * H, a + 2 * H, H);
        const A* h_prev = hp.p + n * hp.ld;
        A* h = hw.data() + (n * L + t) * H;
        for (index_t j = 0; j < H; ++j) h[j] = a[j] * h_prev[j] + (A(1) - a[j]) * a[2 * H + j];
        gw.store((n * L + t) * G, G);
        recw.store((n * L + t) * H, H);
        hw.store((n * L + t) * H, H);
      }
    }
  });
}

template <typename T>
void gru_reset_after_backward(const T* xs, const T* wx, const T* wh, const T* h0, const T* hs, const T* gates,
                              const T* rec, const T* dhs, T* dxs, T* dwx, T* dwh, T* dbx, T* dbh, T* dh0,
                              index_t N, index_t L, index_t D, index_t H, int nthreads) {
  using A = compute_t<T>;
  const index_t G = 3 * H;
  const Widened<T> w_x(wx, D * G), w_h(wh, H * G);
  // da: gradient of the input pre-activations; du: of h_{t-1} @ Wh + bh (the same but r * da_h in the h part)
  Scratch<A> da(static_cast<std::size_t>(N * L * G)), du(static_cast<std::size_t>(N * L * G));
  Scratch<A> dh(static_cast<std::size_t>(N * H), true);
  const PackedB<A> back(H, G, w_h.data(), 1, G);  // Wh^T: B(k, j) = wh[j*3H + k]
  for_row_blocks(N, N * L * G * H, nthreads, [&](index_t n0, index_t n1) {
    const index_t M = n1 - n0;
    Scratch<A> ap(back.apack_elems(M)), dnext(static_cast<std::size_t>(M * H));
    InTile<T> g_row(G), hp_row(H), rec_row(H), dh_row(H);
    for (index_t t = L - 1; t >= 0; --t) {
      const Prev<T> hp = prev_state(h0, hs, t, L, H);
      for (index_t n = n0; n < n1; ++n) {
        const index_t r0 = (n * L + t) * H, g0 = (n * L + t) * G;
        const A* a = g_row.load(gates + g0, G);
        const A* h_prev = hp_row.load(hp.p + n * hp.ld, H);
        const A* rc = rec_row.load(rec + r0, H);
        const A* dhr = dh_row.load(dhs + r0, H);
        A* dx = da.data() + g0;
        A* dr = du.data() + g0;
        for (index_t j = 0; j < H; ++j) {
          const A z = a[j], r = a[H + j], hh = a[2 * H + j];
          const A dhj = dhr[j] + dh[n * H + j];
          const A dah = dhj * (A(1) - z) * (A(1) - hh * hh);
          dx[j] = dr[j] = dhj * (h_prev[j] - hh) * z * (A(1) - z);
          dx[H + j] = dr[H + j] = dah * rc[j] * r * (A(1) - r);
          dx[2 * H + j] = dah;
          dr[2 * H + j] = dah * r;
          dnext[(n - n0) * H + j] = dhj * z;  // the direct path h = z * h_{t-1} + ...
        }
      }
      // dh[n0:n1] = dh * z + dU_t @ Wh^T
      back.run(M, du.data() + n0 * L * G + t * G, L * G, A(1), dnext.data(), H, ap.data());
      std::copy(dnext.data(), dnext.data() + M * H, dh.data() + n0 * H);
    }
  });
  store_row(dh.data(), dh0, N * H);
  Scratch<A> hprev(static_cast<std::size_t>(N * L * H));
  shifted_states(h0, hs, hprev.data(), N, L, H);
  Narrowed<T> dw_x(dwx, D * G), dw_h(dwh, H * G), db_x(dbx, G), db_h(dbh, G);
  weight_grad(static_cast<const A*>(hprev.data()), H, du.data(), G, G, N * L, dw_h.data(), G, nthreads);
  A* dbhv = db_h.data();
  std::fill(dbhv, dbhv + G, A(0));
  for (index_t m = 0; m < N * L; ++m)
    for (index_t j = 0; j < G; ++j) dbhv[j] += du[m * G + j];
  input_grads(xs, w_x.data(), da.data(), dxs, dw_x.data(), db_x.data(), N * L, D, G, nthreads);
  dw_x.store(0, D * G);
  dw_h.store(0, H * G);
  db_x.store(0, G);
  db_h.store(0, G);
}

// -----------------------------------------------------------------------------------------------------------
// explicit instantiations

#define FC_RNN_INSTANTIATE(T, S)                                                                             \
  template void rnn_forward<T>(const T*, const T*, const T*, const T*, const T*, T*, index_t, index_t,       \
                               index_t, index_t, int);                                                       \
  template void rnn_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,      \
                                T*, T*, index_t, index_t, index_t, index_t, int);                            \
  template void lstm_forward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,      \
                                index_t, index_t, index_t, index_t, int);                                    \
  template void lstm_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*,       \
                                 const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, index_t, index_t,     \
                                 index_t, index_t, int);                                                     \
  template void gru_forward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, index_t,        \
                               index_t, index_t, index_t, int);                                              \
  template void gru_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, const T*,        \
                                const T*, T*, T*, T*, T*, T*, index_t, index_t, index_t, index_t, int);  \
  template void gru_reset_after_forward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*,   \
                                           T*, T*, index_t, index_t, index_t, index_t, int);                 \
  template void gru_reset_after_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*,      \
                                            const T*, const T*, T*, T*, T*, T*, T*, T*, index_t, index_t,   \
                                            index_t, index_t, int);
FC_FLOAT_TYPES(FC_RNN_INSTANTIATE)
FC_HALF_TYPES(FC_RNN_INSTANTIATE)
#undef FC_RNN_INSTANTIATE

}  // namespace fastconv::cpu
