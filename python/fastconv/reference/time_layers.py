"""Reference sequence layers (the book sequel's ``common/time_layers.py``), in plain NumPy.

Written from the definitions of the cells, with the sequel's class names, constructors, ``params`` / ``grads``
lists (gradients written into the same arrays with ``[...] =``), its gate layouts -- LSTM columns
``(f, g, i, o)``, GRU columns ``(z, r, h)`` -- and its ``stateful`` / ``set_state`` / ``reset_state``
behaviour. Unlike the sequel, every layer follows the dtype of its inputs and parameters (float64 in, float64
out), so tests can compare fastconv's float32 and float64 paths with a float64 oracle.

Shape letters: a batch of N sequences of T steps, inputs of D features, H hidden units, V classes or words.
Sequences are (N, T, D); weights are Wx (D, G*H), Wh (H, G*H), b (G*H,) with G gates (1 RNN, 4 LSTM, 3 GRU).
"""

import numpy as np

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Attention",
    "AttentionWeight",
    "Embedding",
    "TimeAffine",
    "TimeAttention",
    "TimeBiLSTM",
    "TimeDropout",
    "TimeEmbedding",
    "TimeGRU",
    "TimeLSTM",
    "TimeRNN",
    "TimeSigmoidWithLoss",
    "TimeSoftmaxWithLoss",
    "WeightSum",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "sigmoid",
    "softmax",
]


# ============================================================================
# functions
# ============================================================================


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, evaluated without overflow for either sign of ``x``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x):
    """Softmax over the last axis (its maximum subtracted first)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ============================================================================
# one step of each cell: forward returns (new state..., cache), backward the input gradients
# ============================================================================


def _rnn_step(x, h_prev, Wx, Wh, b):
    h = np.tanh(x @ Wx + h_prev @ Wh + b)
    return h, (x, h_prev, h)


def _rnn_step_backward(dh, cache, Wx, Wh):
    x, h_prev, h = cache
    da = dh * (1 - h * h)  # through tanh
    return da @ Wx.T, da @ Wh.T, (x.T @ da, h_prev.T @ da, da.sum(axis=0))


def _lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    H = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b
    f = sigmoid(a[:, :H])
    g = np.tanh(a[:, H : 2 * H])
    i = sigmoid(a[:, 2 * H : 3 * H])
    o = sigmoid(a[:, 3 * H :])
    c = f * c_prev + g * i
    h = o * np.tanh(c)
    return h, c, (x, h_prev, c_prev, f, g, i, o, c)


def _lstm_step_backward(dh, dc, cache, Wx, Wh):
    x, h_prev, c_prev, f, g, i, o, c = cache
    tc = np.tanh(c)
    dc_total = dc + dh * o * (1 - tc * tc)  # c reaches the loss directly and through h = o * tanh(c)
    da = np.concatenate(
        [
            dc_total * c_prev * f * (1 - f),  # forget gate
            dc_total * i * (1 - g * g),  # candidate
            dc_total * g * i * (1 - i),  # input gate
            dh * tc * o * (1 - o),  # output gate
        ],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc_total * f, (x.T @ da, h_prev.T @ da, da.sum(axis=0))


def _gru_step(x, h_prev, Wx, Wh, b):
    H = h_prev.shape[1]
    ax = x @ Wx + b
    z = sigmoid(ax[:, :H] + h_prev @ Wh[:, :H])
    r = sigmoid(ax[:, H : 2 * H] + h_prev @ Wh[:, H : 2 * H])
    hh = np.tanh(ax[:, 2 * H :] + (r * h_prev) @ Wh[:, 2 * H :])
    h = (1 - z) * h_prev + z * hh
    return h, (x, h_prev, z, r, hh)


def _gru_step_backward(dh, cache, Wx, Wh):
    x, h_prev, z, r, hh = cache
    H = h_prev.shape[1]
    da_h = dh * z * (1 - hh * hh)  # candidate, through tanh
    drh = da_h @ Wh[:, 2 * H :].T  # gradient of r * h_prev
    da_z = dh * (hh - h_prev) * z * (1 - z)
    da_r = drh * h_prev * r * (1 - r)
    da = np.concatenate([da_z, da_r, da_h], axis=1)
    dh_prev = dh * (1 - z) + drh * r + da[:, : 2 * H] @ Wh[:, : 2 * H].T
    dWh = np.concatenate([h_prev.T @ da[:, : 2 * H], (r * h_prev).T @ da_h], axis=1)
    return da @ Wx.T, dh_prev, (x.T @ da, dWh, da.sum(axis=0))


# ============================================================================
# whole sequences (N, T, D) -> (N, T, H)
# ============================================================================


def _run(step, xs, states, *weights):
    """Run ``step`` over the T steps of xs; returns hs (N, T, H), the final states and the per-step caches."""
    hs, caches = [], []
    for t in range(xs.shape[1]):
        *states, cache = step(xs[:, t, :], *states, *weights)
        hs.append(states[0])
        caches.append(cache)
    return np.stack(hs, axis=1), states, caches


def _run_backward(step_backward, dhs, caches, n_carry, Wx, Wh):
    """Backward through time: returns dxs (N, T, D), the gradients of the initial states and (dWx, dWh,
    db)."""
    carry = [0] * n_carry
    dxs, grads = [], [0, 0, 0]
    for t in reversed(range(dhs.shape[1])):
        dh = dhs[:, t, :] + carry[0]
        dx, *carry, step_grads = step_backward(dh, *carry[1:], caches[t], Wx, Wh)
        dxs.append(dx)
        grads = [g + s for g, s in zip(grads, step_grads)]
    return np.stack(dxs[::-1], axis=1), carry, grads


def rnn_forward(xs, Wx, Wh, b, h0):
    """Simple RNN ``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``; returns (hs, caches)."""
    hs, _, caches = _run(_rnn_step, xs, [h0], Wx, Wh, b)
    return hs, caches


def rnn_backward(dhs, caches, Wx, Wh):
    """Returns (dxs, dh0, dWx, dWh, db)."""
    dxs, (dh0,), grads = _run_backward(_rnn_step_backward, dhs, caches, 1, Wx, Wh)
    return (dxs, dh0, *grads)


def lstm_forward(xs, Wx, Wh, b, h0, c0):
    """LSTM with gate columns (f, g, i, o); returns (hs, c_T, caches)."""
    hs, (_, c), caches = _run(_lstm_step, xs, [h0, c0], Wx, Wh, b)
    return hs, c, caches


def lstm_backward(dhs, caches, Wx, Wh):
    """Returns (dxs, dh0, dc0, dWx, dWh, db)."""
    dxs, (dh0, dc0), grads = _run_backward(_lstm_step_backward, dhs, caches, 2, Wx, Wh)
    return (dxs, dh0, dc0, *grads)


def gru_forward(xs, Wx, Wh, b, h0):
    """GRU with gate columns (z, r, h): ``h_t = (1 - z) h_{t-1} + z tanh(x Wxh + (r h_{t-1}) Whh + bh)``."""
    hs, _, caches = _run(_gru_step, xs, [h0], Wx, Wh, b)
    return hs, caches


def gru_backward(dhs, caches, Wx, Wh):
    """Returns (dxs, dh0, dWx, dWh, db)."""
    dxs, (dh0,), grads = _run_backward(_gru_step_backward, dhs, caches, 1, Wx, Wh)
    return (dxs, dh0, *grads)


def _gru_reset_after_step(x, h_prev, Wx, Wh, bx, bh):
    H = h_prev.shape[1]
    ax, u = x @ Wx + bx, h_prev @ Wh + bh  # the reset gate multiplies u, the recurrent product
    z = sigmoid(ax[:, :H] + u[:, :H])
    r = sigmoid(ax[:, H : 2 * H] + u[:, H : 2 * H])
    hh = np.tanh(ax[:, 2 * H :] + r * u[:, 2 * H :])
    return z * h_prev + (1 - z) * hh, (x, h_prev, z, r, hh, u[:, 2 * H :])


def gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0):
    """Keras 3's GRU (``reset_after=True``), gate columns (z, r, h):
    ``h_t = z h_{t-1} + (1 - z) tanh(x Wxh + bxh + r (h_{t-1} Whh + bhh))``; returns (hs, caches)."""
    hs, _, caches = _run(_gru_reset_after_step, xs, [h0], Wx, Wh, bx, bh)
    return hs, caches


def gru_reset_after_backward(dhs, caches, Wx, Wh):
    """Returns (dxs, dh0, dWx, dWh, dbx, dbh)."""
    dh_next, dxs, grads = 0, [], [0, 0, 0, 0]
    for t in reversed(range(dhs.shape[1])):
        x, h_prev, z, r, hh, uh = caches[t]
        dh = dhs[:, t, :] + dh_next
        da_h = dh * (1 - z) * (1 - hh * hh)
        da_z = dh * (h_prev - hh) * z * (1 - z)
        da_r = da_h * uh * r * (1 - r)
        da = np.concatenate([da_z, da_r, da_h], axis=1)  # of the input pre-activations
        du = np.concatenate([da_z, da_r, da_h * r], axis=1)  # of h_prev @ Wh + bh
        dh_next = dh * z + du @ Wh.T
        dxs.append(da @ Wx.T)
        grads = [g + s for g, s in zip(grads, (x.T @ da, h_prev.T @ du, da.sum(axis=0), du.sum(axis=0)))]
    return (np.stack(dxs[::-1], axis=1), dh_next, *grads)


# ============================================================================
# layers with the sequel's interface
# ============================================================================


def _write_grads(grads, values):
    for g, v in zip(grads, values):
        g[...] = v


class _Cell:
    """One step of a recurrent cell: ``params`` [Wx, Wh, b] and ``grads`` of the same shapes."""

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None


class RNN(_Cell):
    """One simple-RNN step: ``forward(x, h_prev) -> h_next``, ``backward(dh_next) -> (dx, dh_prev)``."""

    def forward(self, x, h_prev):
        h, self.cache = _rnn_step(x, h_prev, *self.params)
        return h

    def backward(self, dh_next):
        dx, dh_prev, g = _rnn_step_backward(dh_next, self.cache, *self.params[:2])
        _write_grads(self.grads, g)
        return dx, dh_prev


class LSTM(_Cell):
    """One LSTM step: ``forward(x, h_prev, c_prev) -> (h_next, c_next)``,
    ``backward(dh_next, dc_next) -> (dx, dh_prev, dc_prev)``."""

    def forward(self, x, h_prev, c_prev):
        h, c, self.cache = _lstm_step(x, h_prev, c_prev, *self.params)
        return h, c

    def backward(self, dh_next, dc_next):
        dx, dh_prev, dc_prev, g = _lstm_step_backward(dh_next, dc_next, self.cache, *self.params[:2])
        _write_grads(self.grads, g)
        return dx, dh_prev, dc_prev


class GRU(_Cell):
    """One GRU step: ``forward(x, h_prev) -> h_next``, ``backward(dh_next) -> (dx, dh_prev)``."""

    def forward(self, x, h_prev):
        h, self.cache = _gru_step(x, h_prev, *self.params)
        return h

    def backward(self, dh_next):
        dx, dh_prev, g = _gru_step_backward(dh_next, self.cache, *self.params[:2])
        _write_grads(self.grads, g)
        return dx, dh_prev


class _TimeCell(_Cell):
    """A cell run over whole sequences; the hidden state h (and the LSTM's c) carries over between calls when
    ``stateful``. ``dh`` is the gradient of the initial h after ``backward``."""

    _n_states = 1

    def __init__(self, Wx, Wh, b, stateful=False):
        super().__init__(Wx, Wh, b)
        self.stateful = stateful
        self.h, self.c, self.dh = None, None, None
        self.caches = None

    def _initial(self, state, N, H, dtype):
        return state if self.stateful and state is not None else np.zeros((N, H), dtype=dtype)

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h, self.c = None, None


class TimeRNN(_TimeCell):
    def forward(self, xs):
        Wx, Wh, b = self.params
        h0 = self._initial(self.h, xs.shape[0], Wh.shape[0], np.result_type(xs, Wx))
        hs, self.caches = rnn_forward(xs, Wx, Wh, b, h0)
        self.h = hs[:, -1, :]
        return hs

    def backward(self, dhs):
        dxs, self.dh, *g = rnn_backward(dhs, self.caches, *self.params[:2])
        _write_grads(self.grads, g)
        return dxs


class TimeLSTM(_TimeCell):
    def forward(self, xs):
        Wx, Wh, b = self.params
        N, H, dtype = xs.shape[0], Wh.shape[0], np.result_type(xs, Wx)
        h0, c0 = self._initial(self.h, N, H, dtype), self._initial(self.c, N, H, dtype)
        hs, self.c, self.caches = lstm_forward(xs, Wx, Wh, b, h0, c0)
        self.h = hs[:, -1, :]
        return hs

    def backward(self, dhs):
        dxs, self.dh, _, *g = lstm_backward(dhs, self.caches, *self.params[:2])
        _write_grads(self.grads, g)
        return dxs


class TimeGRU(_TimeCell):
    def forward(self, xs):
        Wx, Wh, b = self.params
        h0 = self._initial(self.h, xs.shape[0], Wh.shape[0], np.result_type(xs, Wx))
        hs, self.caches = gru_forward(xs, Wx, Wh, b, h0)
        self.h = hs[:, -1, :]
        return hs

    def backward(self, dhs):
        dxs, self.dh, *g = gru_backward(dhs, self.caches, *self.params[:2])
        _write_grads(self.grads, g)
        return dxs


class Embedding:
    """Rows of W picked by integer ids: ``forward(idx) -> W[idx]``; backward adds dout into those rows."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.idx = None

    def forward(self, idx):
        self.idx = idx
        return self.params[0][idx]

    def backward(self, dout):
        dW = self.grads[0]
        dW[...] = 0
        np.add.at(dW, self.idx, dout)  # repeated ids accumulate


class TimeEmbedding(Embedding):
    """Embedding of id sequences (N, T) -> (N, T, D)."""


class TimeAffine:
    """``x @ W + b`` applied at every step: (N, T, D) -> (N, T, M)."""

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None

    def forward(self, x):
        W, b = self.params
        self.x = x
        return x @ W + b

    def backward(self, dout):
        W, _ = self.params
        x2 = self.x.reshape(-1, self.x.shape[-1])
        d2 = dout.reshape(-1, dout.shape[-1])
        _write_grads(self.grads, (x2.T @ d2, d2.sum(axis=0)))
        return dout @ W.T


class TimeSoftmaxWithLoss:
    """Softmax over V and the cross-entropy averaged over the steps whose label is not ``ignore_label`` (-1).

    ``ts`` is integer labels (N, T) or one-hot targets (N, T, V). The loss has no 1e-7 inside the log (as the
    sequel); a batch with every label ignored gives the loss NaN (0 / 0, as the sequel) and a zero gradient.
    """

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None
        self.ignore_label = -1

    def forward(self, xs, ts):
        if ts.ndim == 3:
            ts = ts.argmax(axis=2)
        keep = ts != self.ignore_label
        ys = softmax(xs)
        safe = np.where(keep, ts, 0)
        py = np.take_along_axis(ys, safe[..., None], axis=2)[..., 0]
        count = keep.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = -np.sum(np.where(keep, np.log(py), 0)) / count
        self.cache = (safe, keep, ys, count)
        return loss

    def backward(self, dout=1):
        safe, keep, ys, count = self.cache
        if count == 0:
            return np.zeros_like(ys)
        onehot = np.zeros_like(ys)
        np.put_along_axis(onehot, safe[..., None], 1, axis=2)
        return (ys - onehot) * (dout / count) * keep[..., None]


class TimeSigmoidWithLoss:
    """Sigmoid of scores (N, T) and the binary cross-entropy against 0/1 targets (N, T), averaged over N and
    T.

    As the sequel (its SigmoidWithLoss per step), each log is of ``p + 1e-7``.
    """

    def __init__(self):
        self.params, self.grads = [], []
        self.y = None
        self.t = None

    def forward(self, xs, ts):
        self.y, self.t = sigmoid(xs), ts
        p_true = np.where(ts == 1, self.y, 1 - self.y)
        return -np.sum(np.log(p_true + 1e-7)) / xs.size

    def backward(self, dout=1):
        return (self.y - self.t) * (dout / self.y.size)


class TimeDropout:
    """Inverted dropout: in training (``train_flg``) each element is kept with probability 1 - ratio and
    scaled by 1 / (1 - ratio); at test time the identity. ``mask`` holds the scaled keep-mask of the last
    forward,
    drawn from NumPy's global generator as the sequel does."""

    def __init__(self, dropout_ratio=0.5):
        self.params, self.grads = [], []
        self.dropout_ratio = dropout_ratio
        self.mask = None
        self.train_flg = True

    def forward(self, xs):
        if not self.train_flg:
            return xs
        keep = np.random.rand(*xs.shape) > self.dropout_ratio
        self.mask = keep.astype(xs.dtype) / (1.0 - self.dropout_ratio)
        return xs * self.mask

    def backward(self, dout):
        return dout * self.mask


class TimeBiLSTM:
    """Two TimeLSTMs, one over the sequence and one over it reversed; outputs concatenated to (N, T, 2H)."""

    def __init__(self, Wx1, Wh1, b1, Wx2, Wh2, b2, stateful=False):
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1, stateful)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2, stateful)
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads

    def forward(self, xs):
        h1 = self.forward_lstm.forward(xs)
        h2 = self.backward_lstm.forward(xs[:, ::-1])[:, ::-1]
        return np.concatenate([h1, h2], axis=2)

    def backward(self, dhs):
        H = dhs.shape[2] // 2
        dx1 = self.forward_lstm.backward(dhs[:, :, :H])
        dx2 = self.backward_lstm.backward(dhs[:, ::-1, H:])[:, ::-1]
        return dx1 + dx2


# ============================================================================
# attention (the sequel's ch08/attention_layer.py): dot-product scores over the encoder states hs (N, S, H)
# ============================================================================


class WeightSum:
    """Context ``c[n] = sum_s a[n, s] hs[n, s]`` of encoder states hs (N, S, H) under weights a (N, S)."""

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None

    def forward(self, hs, a):
        self.cache = (hs, a)
        return np.einsum("ns,nsh->nh", a, hs)

    def backward(self, dc):
        hs, a = self.cache
        return a[:, :, None] * dc[:, None, :], np.einsum("nsh,nh->ns", hs, dc)


class AttentionWeight:
    """Weights ``a[n] = softmax_s(hs[n, s] . h[n])`` of encoder states hs (N, S, H) for a decoder state h (N,
    H)."""

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None

    def forward(self, hs, h):
        a = softmax(np.einsum("nsh,nh->ns", hs, h))
        self.cache = (hs, h, a)
        return a

    def backward(self, da):
        hs, h, a = self.cache
        ds = a * (da - np.sum(a * da, axis=1, keepdims=True))  # through the softmax
        return ds[:, :, None] * h[:, None, :], np.einsum("ns,nsh->nh", ds, hs)


class Attention:
    """AttentionWeight then WeightSum: ``forward(hs, h) -> c``, ``backward(dc) -> (dhs, dh)``."""

    def __init__(self):
        self.params, self.grads = [], []
        self.attention_weight_layer = AttentionWeight()
        self.weight_sum_layer = WeightSum()
        self.attention_weight = None

    def forward(self, hs, h):
        self.attention_weight = self.attention_weight_layer.forward(hs, h)
        return self.weight_sum_layer.forward(hs, self.attention_weight)

    def backward(self, dout):
        dhs_sum, da = self.weight_sum_layer.backward(dout)
        dhs_weight, dh = self.attention_weight_layer.backward(da)
        return dhs_sum + dhs_weight, dh


class TimeAttention:
    """Attention for every decoder step: hs_enc (N, S, H), hs_dec (N, L, H) -> contexts (N, L, H)."""

    def __init__(self):
        self.params, self.grads = [], []
        self.layers = None
        self.attention_weights = None

    def forward(self, hs_enc, hs_dec):
        self.layers = [Attention() for _ in range(hs_dec.shape[1])]
        out = np.stack(
            [layer.forward(hs_enc, hs_dec[:, t, :]) for t, layer in enumerate(self.layers)], axis=1
        )
        self.attention_weights = [layer.attention_weight for layer in self.layers]
        return out

    def backward(self, dout):
        dhs_enc, dhs_dec = 0, []
        for t, layer in enumerate(self.layers):
            dhs, dh = layer.backward(dout[:, t, :])
            dhs_enc = dhs_enc + dhs
            dhs_dec.append(dh)
        return dhs_enc, np.stack(dhs_dec, axis=1)
