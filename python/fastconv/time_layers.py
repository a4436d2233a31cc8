"""The book sequel's sequence layers (``common/time_layers.py`` of *Deep Learning from Scratch 2*, and the
attention layers of its ``ch08/attention_layer.py``) on fastconv's kernels.

Change ``from common.time_layers import *`` to ``from fastconv.time_layers import *``: the classes keep the
sequel's names, constructors, methods and public attributes -- ``params`` / ``grads`` lists holding the
caller's arrays (gradients are written into the same arrays with ``[...] =``, as the sequel's optimizers and
``clip_grads`` expect), the LSTM gate columns (f, g, i, o) and GRU columns (z, r, h), ``stateful``,
``set_state``, ``reset_state`` and ``dh`` -- and the names the sequel's module hands on through ``import *``
(``np``, ``GPU``, ``softmax``, ``sigmoid``, ``cross_entropy_error``, ``Affine``, ``MatMul``,
``SoftmaxWithLoss``, ``Sigmoid``, ``SigmoidWithLoss``, ``Dropout``, ``Embedding``).

Where this module differs from the sequel, on purpose:

- A whole sequence is one kernel call (``fastconv.ops.lstm_forward``, ``attention_forward`` ...), so
  ``TimeLSTM.layers`` and ``TimeAttention.layers`` (the sequel's per-step objects) stay None.
- Outputs follow the dtype of the inputs and parameters (the sequel always allocates float32): float32 models,
  as the sequel builds them, get float32 everywhere; float64 ones stay float64; float16 and bfloat16 ones stay
  16-bit (the kernels compute in float32 and round each stored value once).
- Dropout masks come from fastconv's counter-based generator keyed from NumPy's global generator
  (``np.random.seed`` makes runs repeatable, but the masks are not the sequel's ``np.random.rand`` draws).
- ``TimeSoftmaxWithLoss`` computes ``-log softmax`` as ``log-sum-exp - x`` (finite where the sequel's float32
  softmax underflows to 0 and its log gives inf).
"""

from __future__ import annotations

import numpy as np

from . import layers as _book
from . import ops
from ._backend import is_half
from .functions import cross_entropy_error, sigmoid, softmax

GPU = False  # the sequel's common.config flag, handed on through its modules' ``import *``

__all__ = [
    "GPU",
    "GRU",
    "LSTM",
    "RNN",
    "Affine",
    "Attention",
    "AttentionWeight",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "MatMul",
    "MultiHeadAttention",
    "Sigmoid",
    "SigmoidWithLoss",
    "SoftmaxWithLoss",
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
    "TransformerEncoderLayer",
    "WeightSum",
    "cross_entropy_error",
    "np",
    "sigmoid",
    "softmax",
]


# ======================================================================================================
# helpers


def _set_grads(grads, values) -> None:
    """Write each gradient into the caller's array, as the sequel does (its optimizers hold these arrays)."""
    for g, v in zip(grads, values):
        g[...] = v


def _zero_state(xs, Wh):
    """Zeros (N, H) of the dtype of the cell's computation, for a sequence xs (N, T, D) or a step x (N, D)."""
    xs, Wh = ops.as_array(xs, "xs"), ops.as_array(Wh, "Wh")
    n = xs.shape[0] if xs.ndim else 1
    h = Wh.shape[0] if Wh.ndim else 1
    dtype = np.result_type(xs.dtype, Wh.dtype)
    if not (dtype.kind == "f" or is_half(dtype)):  # integers compute in float32, 16-bit types keep theirs
        dtype = np.result_type(dtype, np.float32)
    return np.zeros((n, h), dtype=dtype)


def _rows(x, name: str):
    """x (..., D) viewed as rows (M, D), for layers applied at every step."""
    x = ops.as_array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected an array (N, T, D) or (N, D), got shape {x.shape}")
    return x.reshape(-1, x.shape[-1])


def _step(x):
    """One step x (N, D) as a sequence (N, 1, D)."""
    x = ops.as_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x: expected one step (N, D), got shape {x.shape}")
    return x[:, None, :]


# ======================================================================================================
# recurrent cells over whole sequences


class _TimeCell:
    """Shared state handling: the hidden state h (and the LSTM's c) carries over between calls when
    ``stateful``; ``set_state`` gives it and ``reset_state`` forgets it. ``dh`` is the gradient of the initial
    h after
    ``backward`` (seq2seq encoders read it)."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers = None
        self.h, self.dh = None, None
        self.stateful = stateful
        self._cache = None

    def _initial(self, state, xs):
        """The state a forward pass starts from: the carried one when stateful and set, else zeros."""
        if self.stateful and state is not None:
            return state
        return _zero_state(xs, self.params[1])

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None


class TimeRNN(_TimeCell):
    """Simple RNN over sequences (N, T, D) -> (N, T, H): ``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``."""

    def forward(self, xs):
        Wx, Wh, b = self.params
        h0 = self._initial(self.h, xs)
        hs = ops.rnn_forward(xs, Wx, Wh, b, h0)
        self._cache = (xs, h0, hs)
        self.h = hs[:, -1, :].copy()
        return hs

    def backward(self, dhs):
        Wx, Wh, _ = self.params
        xs, h0, hs = self._cache
        dxs, *g, self.dh = ops.rnn_backward(xs, Wx, Wh, h0, hs, dhs)
        _set_grads(self.grads, g)
        return dxs


class TimeLSTM(_TimeCell):
    """LSTM over sequences (N, T, D) -> (N, T, H), gate columns (f, g, i, o) of Wx (D, 4H), Wh (H, 4H), b
    (4H,).

    Only the gradient of the initial h is kept (``dh``), as the sequel: the last states get no gradient.
    """

    def __init__(self, Wx, Wh, b, stateful=False):
        super().__init__(Wx, Wh, b, stateful)
        self.c = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        h0, c0 = self._initial(self.h, xs), self._initial(self.c, xs)
        hs, cs, gates = ops.lstm_forward(xs, Wx, Wh, b, h0, c0)
        self._cache = (xs, h0, c0, hs, cs, gates)
        self.h, self.c = hs[:, -1, :].copy(), cs[:, -1, :].copy()
        return hs

    def backward(self, dhs):
        Wx, Wh, _ = self.params
        dxs, *g, self.dh, _ = ops.lstm_backward(*self._cache[:1], Wx, Wh, *self._cache[1:], dhs)
        _set_grads(self.grads, g)
        return dxs

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h, self.c = None, None


class TimeGRU(_TimeCell):
    """GRU over sequences (N, T, D) -> (N, T, H), gate columns (z, r, h) of Wx (D, 3H), Wh (H, 3H), b
    (3H,)."""

    def forward(self, xs):
        Wx, Wh, b = self.params
        h0 = self._initial(self.h, xs)
        hs, gates, rh = ops.gru_forward(xs, Wx, Wh, b, h0)
        self._cache = (xs, h0, hs, gates, rh)
        self.h = hs[:, -1, :].copy()
        return hs

    def backward(self, dhs):
        Wx, Wh, _ = self.params
        dxs, *g, self.dh = ops.gru_backward(*self._cache[:1], Wx, Wh, *self._cache[1:], dhs)
        _set_grads(self.grads, g)
        return dxs


class TimeBiLSTM:
    """Two TimeLSTMs, one reading the sequence forwards and one backwards; outputs concatenated to (N, T,
    2H)."""

    def __init__(self, Wx1, Wh1, b1, Wx2, Wh2, b2, stateful=False):
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1, stateful)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2, stateful)
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads

    def forward(self, xs):
        h1 = self.forward_lstm.forward(xs)
        h2 = self.backward_lstm.forward(ops.as_array(xs, "xs")[:, ::-1])
        return np.concatenate((h1, h2[:, ::-1]), axis=2)

    def backward(self, dhs):
        H = dhs.shape[2] // 2
        dxs = self.forward_lstm.backward(dhs[:, :, :H])
        dxs += self.backward_lstm.backward(dhs[:, ::-1, H:])[:, ::-1]
        return dxs


# ======================================================================================================
# one step of each cell (the sequel's RNN, LSTM, GRU): the whole-sequence kernels with T = 1


class _Cell:
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None


class RNN(_Cell):
    """One simple-RNN step: ``forward(x, h_prev) -> h_next``, ``backward(dh_next) -> (dx, dh_prev)``."""

    def forward(self, x, h_prev):
        xs = _step(x)
        hs = ops.rnn_forward(xs, *self.params, h_prev)
        self.cache = (xs, h_prev, hs)
        return hs[:, 0, :]

    def backward(self, dh_next):
        xs, h_prev, hs = self.cache
        dxs, *g, dh_prev = ops.rnn_backward(
            xs, *self.params[:2], h_prev, hs, ops.as_array(dh_next)[:, None, :]
        )
        _set_grads(self.grads, g)
        return dxs[:, 0, :], dh_prev


class LSTM(_Cell):
    """One LSTM step: ``forward(x, h_prev, c_prev) -> (h_next, c_next)``,
    ``backward(dh_next, dc_next) -> (dx, dh_prev, dc_prev)``."""

    def forward(self, x, h_prev, c_prev):
        xs = _step(x)
        hs, cs, gates = ops.lstm_forward(xs, *self.params, h_prev, c_prev)
        self.cache = (xs, h_prev, c_prev, hs, cs, gates)
        return hs[:, 0, :], cs[:, 0, :]

    def backward(self, dh_next, dc_next):
        xs, *rest = self.cache
        dxs, *g, dh_prev, dc_prev = ops.lstm_backward(
            xs, *self.params[:2], *rest, ops.as_array(dh_next)[:, None, :], dc_last=dc_next
        )
        _set_grads(self.grads, g)
        return dxs[:, 0, :], dh_prev, dc_prev


class GRU(_Cell):
    """One GRU step: ``forward(x, h_prev) -> h_next``, ``backward(dh_next) -> (dx, dh_prev)``."""

    def forward(self, x, h_prev):
        xs = _step(x)
        hs, gates, rh = ops.gru_forward(xs, *self.params, h_prev)
        self.cache = (xs, h_prev, hs, gates, rh)
        return hs[:, 0, :]

    def backward(self, dh_next):
        xs, *rest = self.cache
        dxs, *g, dh_prev = ops.gru_backward(xs, *self.params[:2], *rest, ops.as_array(dh_next)[:, None, :])
        _set_grads(self.grads, g)
        return dxs[:, 0, :], dh_prev


# ======================================================================================================
# embedding, affine, losses and dropout


class Embedding:
    """Rows of the table W (V, D) picked by integer ids: ``forward(idx) -> W[idx]`` for ids of any shape;
    ``backward(dout)`` writes the scatter-added gradient into ``grads[0]`` and returns None."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.idx = None

    def forward(self, idx):
        self.idx = idx
        return ops.embedding_forward(self.params[0], idx)

    def backward(self, dout):
        dW = self.grads[0]
        inplace = (
            isinstance(dW, np.ndarray)
            and dW.flags.c_contiguous
            and dW.flags.writeable
            and dW.dtype == np.result_type(ops.as_array(dout, "dout"))
        )
        got = ops.embedding_backward(dout, self.idx, dW.shape, out=dW if inplace else None)
        if not inplace:
            dW[...] = got


class TimeEmbedding(Embedding):
    """Embedding of id sequences (N, T) -> (N, T, D)."""

    def __init__(self, W):
        super().__init__(W)
        self.W = W
        self.layers = None


class MatMul:
    """``x @ W`` without bias."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.x = None

    def forward(self, x):
        self.x = x
        return ops.gemm(x, self.params[0])

    def backward(self, dout):
        W = self.params[0]
        _set_grads(self.grads, [ops.gemm(self.x, dout, trans_a=True)])
        return ops.gemm(dout, W, trans_b=True)


class Affine:
    """``x @ W + b`` on a batch (N, D) (the sequel's layer, with ``params`` / ``grads`` lists)."""

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None

    def forward(self, x):
        self.x = x
        return ops.affine_forward(x, *self.params)

    def backward(self, dout):
        dx, *g = ops.affine_backward(self.x, self.params[0], dout)
        _set_grads(self.grads, g)
        return dx


class TimeAffine(Affine):
    """``x @ W + b`` at every step: (N, T, D) -> (N, T, M), as one GEMM over the N*T rows."""

    def forward(self, x):
        self.x = ops.as_array(x, "x")
        out = ops.affine_forward(_rows(self.x, "x"), *self.params)
        return out.reshape(*self.x.shape[:-1], out.shape[-1])

    def backward(self, dout):
        dx, *g = ops.affine_backward(_rows(self.x, "x"), self.params[0], _rows(dout, "dout"))
        _set_grads(self.grads, g)
        return dx.reshape(self.x.shape)


class SoftmaxWithLoss(_book.SoftmaxWithLoss):
    """Softmax and the mean cross-entropy (``log(y + 1e-7)``) of a batch, integer labels or one-hot targets:
    fastconv.layers' layer with the sequel's empty ``params`` / ``grads``."""

    def __init__(self):
        super().__init__()
        self.params, self.grads = [], []


class TimeSoftmaxWithLoss:
    """Softmax of scores (N, T, V) and the cross-entropy averaged over the steps whose label is not
    ``ignore_label`` (-1); labels (N, T) or one-hot targets (N, T, V). The loss is a scalar of the scores'
    dtype."""

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None
        self.ignore_label = -1

    def forward(self, xs, ts):
        loss, ys, labels, kept = ops.time_softmax_ce(xs, ts, self.ignore_label)
        self.cache = (labels, ys, kept)
        return ys.dtype.type(loss)

    def backward(self, dout=1):
        labels, ys, kept = self.cache
        return ops.time_softmax_ce_backward(ys, labels, kept, dout, self.ignore_label)


class Sigmoid(_book.Sigmoid):
    """Logistic sigmoid: fastconv.layers' layer with the sequel's empty ``params`` / ``grads``."""

    def __init__(self):
        super().__init__()
        self.params, self.grads = [], []


class SigmoidWithLoss:
    """Sigmoid of scores and the mean binary cross-entropy against 0/1 integer labels of the same shape.

    As the sequel, the loss is the cross-entropy of the two-class probabilities (1 - y, y) with ``log(p +
    1e-7)``; they are the softmax of the scores (0, x), so the op is fastconv's softmax cross-entropy over two
    columns.
    """

    def __init__(self):
        self.params, self.grads = [], []
        self.loss = None
        self.y = None
        self.t = None
        self._y2 = None

    def forward(self, x, t):
        x = ops.as_array(x, "x")
        self.t = ops.as_array(t, "t")
        pairs = np.stack((np.zeros_like(x), x), axis=-1).reshape(-1, 2)
        self.loss, self._y2 = ops.softmax_cross_entropy(pairs, self.t.reshape(-1))
        self.y = self._y2[:, 1].reshape(x.shape)
        return self.loss

    def backward(self, dout=1):
        d2 = ops.softmax_cross_entropy_backward(self._y2, self.t.reshape(-1), dout)
        return d2[:, 1].reshape(self.y.shape)


class TimeSigmoidWithLoss(SigmoidWithLoss):
    """SigmoidWithLoss over scores (N, T) and 0/1 labels (N, T): the mean over the N*T steps."""


class Dropout(_book.Dropout):
    """Dropout of the first book (no rescaling; at test time x * (1 - ratio)): fastconv.layers' layer, whose
    masks are keyed from NumPy's global generator, with the sequel's empty ``params`` / ``grads``."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__(dropout_ratio)
        self.params, self.grads = [], []


class TimeDropout:
    """Inverted dropout over sequences: with ``train_flg`` (set by the model) each element is kept with
    probability 1 - ratio and scaled by 1 / (1 - ratio); otherwise the identity. ``mask`` is the scaled float
    mask of the last training forward, as in the sequel."""

    def __init__(self, dropout_ratio=0.5):
        self.params, self.grads = [], []
        self.dropout_ratio = dropout_ratio
        self.train_flg = True
        self._keep = None
        self._scale = None
        self._keys = _book.Dropout()  # mask keys from NumPy's global generator, as the book's layer

    @property
    def mask(self):
        if self._keep is None:
            return None
        return self._keep.astype(self._scale.dtype) * self._scale

    def forward(self, xs):
        if not self.train_flg:
            return xs
        out, self._keep = ops.dropout_forward(xs, self.dropout_ratio, self._keys._next_key())
        self._scale = out.dtype.type(1.0 / (1.0 - self.dropout_ratio))
        out *= self._scale
        return out

    def backward(self, dout):
        dx = ops.dropout_backward(dout, self._keep)
        dx *= self._scale
        return dx


# ======================================================================================================
# attention (the sequel's ch08/attention_layer.py)


class WeightSum:
    """Context ``c[n] = sum_s a[n, s] * hs[n, s]``: ``forward(hs, a) -> c``, ``backward(dc) -> (dhs, da)``."""

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None

    def forward(self, hs, a):
        self.cache = (hs, a)
        return ops.weight_sum_forward(hs, a)

    def backward(self, dc):
        return ops.weight_sum_backward(*self.cache, dc)


class AttentionWeight:
    """Weights ``a[n] = softmax_s(hs[n, s] . h[n])``: ``forward(hs, h) -> a``, ``backward(da) -> (dhs,
    dh)``."""

    def __init__(self):
        self.params, self.grads = [], []
        self.cache = None

    def forward(self, hs, h):
        a = ops.attention_weight_forward(hs, h)
        self.cache = (hs, h, a)
        return a

    def backward(self, da):
        return ops.attention_weight_backward(*self.cache, da)


class Attention:
    """AttentionWeight then WeightSum for one decoder state: ``forward(hs, h) -> c``,
    ``backward(dout) -> (dhs, dh)``; ``attention_weight`` holds the last weights (N, S)."""

    def __init__(self):
        self.params, self.grads = [], []
        self.attention_weight_layer = AttentionWeight()
        self.weight_sum_layer = WeightSum()
        self.attention_weight = None

    def forward(self, hs, h):
        self.attention_weight = self.attention_weight_layer.forward(hs, h)
        return self.weight_sum_layer.forward(hs, self.attention_weight)

    def backward(self, dout):
        dhs, da = self.weight_sum_layer.backward(dout)
        dhs_weight, dh = self.attention_weight_layer.backward(da)
        dhs += dhs_weight
        return dhs, dh


class TimeAttention:
    """Attention of every decoder step at once: ``forward(hs_enc (N, S, H), hs_dec (N, L, H)) -> (N, L, H)``,
    ``backward(dout) -> (dhs_enc, dhs_dec)``. ``attention_weights`` lists the weights (N, S) of each step, as
    the
    sequel's; ``layers`` stays None (one kernel call, no per-step Attention objects)."""

    def __init__(self):
        self.params, self.grads = [], []
        self.layers = None
        self.attention_weights = None
        self._cache = None

    def forward(self, hs_enc, hs_dec):
        out, a = ops.attention_forward(hs_enc, hs_dec)
        self._cache = (hs_enc, hs_dec, a)
        self.attention_weights = [a[:, t, :] for t in range(a.shape[1])]
        return out

    def backward(self, dout):
        return ops.attention_backward(*self._cache, dout)


# ======================================================================================================
# Transformer blocks (not in the sequel): multi-head attention, layer normalisation and the encoder layer of
# torch.nn.TransformerEncoderLayer, batch first (N, T, D), with the sequel's params / grads lists


class LayerNorm:
    """Layer normalisation over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    (``ops.layernorm_*``)."""

    def __init__(self, gamma, beta, eps=1e-5):
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.eps = eps
        self._cache = None

    def forward(self, x):
        out, mean, rstd = ops.layernorm_forward(x, *self.params, eps=self.eps)
        self._cache = (x, mean, rstd)
        return out

    def backward(self, dout):
        x, mean, rstd = self._cache
        dx, *g = ops.layernorm_backward(x, self.params[0], mean, rstd, dout)
        _set_grads(self.grads, g)
        return dx


def _heads(x, n_heads: int):
    """(N, T, n_heads * d) -> (N * n_heads, T, d): one row block per head, as the attention kernel takes
    them."""
    N, T, HD = x.shape
    return np.ascontiguousarray(x.reshape(N, T, n_heads, HD // n_heads).transpose(0, 2, 1, 3)).reshape(
        N * n_heads, T, HD // n_heads
    )


def _merge_heads(x, N: int):
    """The inverse of :func:`_heads`: (N * n_heads, T, d) -> (N, T, n_heads * d)."""
    B, T, d = x.shape
    return np.ascontiguousarray(x.reshape(N, B // N, T, d).transpose(0, 2, 1, 3)).reshape(N, T, B // N * d)


class MultiHeadAttention:
    """Multi-head scaled dot-product attention (Vaswani et al. 2017) of queries (N, L, Dq) over keys (N, S,
    Dk) and values (N, S, Dv).

    ``params`` = [Wq (Dq, H*E), bq (H*E,), Wk (Dk, H*E), bk, Wv (Dv, H*F), bv (H*F,), Wo (H*F, Do), bo (Do,)]
    with H = ``num_heads``: the projections are ``ops.affine_*`` over all N*T rows, the heads are
    ``ops.sdpa_*`` with scale 1 / sqrt(E), and ``dropout`` drops attention weights in training (inverted,
    ``train_flg`` as the sequel's layers; masks from NumPy's global generator).
    """

    def __init__(self, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, dropout=0.0):
        self.params = [Wq, bq, Wk, bk, Wv, bv, Wo, bo]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.train_flg = True
        self._keys = _book.Dropout()
        self._cache = None

    def forward(self, q, k=None, v=None):
        """Attention of q over k and v (self-attention when both are None; v defaults to k)."""
        k = q if k is None else k
        v = k if v is None else v
        Wq, bq, Wk, bk, Wv, bv, Wo, bo = self.params
        H, N = self.num_heads, q.shape[0]
        xs = (q, k, v)
        if q is k and k is v:
            # self-attention: the three projections as one GEMM on [Wq Wk Wv] (one pass over x, wider tiles)
            W, b = np.concatenate((Wq, Wk, Wv), axis=1), np.concatenate((bq, bk, bv))
            qkv = ops.affine_forward(_rows(q, "query"), W, b)
            cuts = np.cumsum([Wq.shape[1], Wk.shape[1]])
            Q, K, V = (_heads(a.reshape(*q.shape[:-1], -1), H) for a in np.split(qkv, cuts, axis=1))
            fused = W
        else:
            Q, K, V = (
                _heads(ops.affine_forward(_rows(x, n), W, b).reshape(*x.shape[:-1], -1), H)
                for x, n, W, b in zip(xs, ("query", "key", "value"), (Wq, Wk, Wv), (bq, bk, bv))
            )
            fused = None
        mask = None
        if self.train_flg and self.dropout > 0.0:
            _, keep = ops.dropout_forward(
                np.ones((Q.shape[0], Q.shape[1], K.shape[1]), dtype=Q.dtype),
                self.dropout,
                self._keys._next_key(),
            )
            mask = keep.astype(Q.dtype) * Q.dtype.type(1.0 / (1.0 - self.dropout))
        scale = 1.0 / np.sqrt(Q.shape[-1])
        O, p = ops.sdpa_forward(Q, K, V, scale, mask=mask)
        O = _merge_heads(O, N)
        out = ops.affine_forward(_rows(O, "O"), Wo, bo)
        self._cache = (xs, Q, K, V, O, p, mask, scale, fused)
        return out.reshape(*q.shape[:-1], -1)

    def backward(self, dout):
        """Returns (dq, dk, dv); after a self-attention forward (k and v None, or q itself) (dx, None, None),
        dx the whole gradient of x."""
        xs, Q, K, V, O, p, mask, scale, fused = self._cache
        Wq, _, Wk, _, Wv, _, Wo, _ = self.params
        N, H = xs[0].shape[0], self.num_heads
        dO, dWo, dbo = ops.affine_backward(_rows(O, "O"), Wo, _rows(dout, "dout"))
        dQ, dK, dV = ops.sdpa_backward(Q, K, V, p, _heads(dO.reshape(O.shape), H), scale, mask=mask)
        if fused is not None:
            d = np.concatenate([_rows(_merge_heads(a, N), "d") for a in (dQ, dK, dV)], axis=1)
            dx, dW, db = ops.affine_backward(_rows(xs[0], "x"), fused, d)
            cuts = np.cumsum([Wq.shape[1], Wk.shape[1]])
            grads = [g for pair in zip(np.split(dW, cuts, axis=1), np.split(db, cuts)) for g in pair]
            _set_grads(self.grads, grads + [dWo, dbo])
            return dx.reshape(xs[0].shape), None, None
        dxs, grads = [], []
        for x, W, d in zip(xs, (Wq, Wk, Wv), (dQ, dK, dV)):
            dx, dW, db = ops.affine_backward(_rows(x, "x"), W, _rows(_merge_heads(d, N), "d"))
            dxs.append(dx.reshape(x.shape))
            grads += [dW, db]
        _set_grads(self.grads, grads + [dWo, dbo])
        return tuple(dxs)


class TransformerEncoderLayer:
    """The encoder layer of ``torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
    activation='relu', layer_norm_eps, batch_first=True, norm_first)``: self-attention, dropout, add & norm,
    feed-forward (Linear, ReLU, dropout, Linear), dropout, add & norm (``norm_first`` normalises before each
    block instead). x is (N, T, d_model).

    ``params`` = the attention's 8 (:class:`MultiHeadAttention`), W1 (d_model, ff), b1, W2 (ff, d_model), b2,
    gamma1, beta1, gamma2, beta2. The first feed-forward GEMM and its ReLU are one ``ops.affine_forward`` and
    ``ops.relu_forward``; dropout is the inverted dropout of :class:`TimeDropout`, on with ``train_flg``.
    """

    def __init__(
        self,
        attn_params,
        W1,
        b1,
        W2,
        b2,
        gamma1,
        beta1,
        gamma2,
        beta2,
        nhead,
        dropout=0.1,
        layer_norm_eps=1e-5,
        norm_first=False,
    ):
        self.attn = MultiHeadAttention(*attn_params, num_heads=nhead, dropout=dropout)
        self.ff1, self.ff2 = TimeAffine(W1, b1), TimeAffine(W2, b2)
        self.norm1, self.norm2 = (
            LayerNorm(gamma1, beta1, layer_norm_eps),
            LayerNorm(gamma2, beta2, layer_norm_eps),
        )
        self.drops = [TimeDropout(dropout) for _ in range(3)]  # after attention, inside and after the FFN
        self.layers = [self.attn, self.ff1, self.ff2, self.norm1, self.norm2]
        self.params = [p for la in self.layers for p in la.params]
        self.grads = [g for la in self.layers for g in la.grads]
        self.norm_first = bool(norm_first)
        self.dropout = float(dropout)
        self.train_flg = True
        self._relu_out = None

    def _drop(self, i, x):
        d = self.drops[i]
        d.train_flg = self.train_flg and self.dropout > 0.0
        return d.forward(x)

    def _sa(self, x):
        self.attn.train_flg = self.train_flg
        return self._drop(0, self.attn.forward(x))

    def _ff(self, x):
        self._relu_out = ops.relu_forward(self.ff1.forward(x))
        return self._drop(2, self.ff2.forward(self._drop(1, self._relu_out)))

    def _sa_back(self, d):
        dq, dk, dv = self.attn.backward(self.drops[0].backward(d) if self.drops[0].train_flg else d)
        return dq if dk is None else dq + dk + dv

    def _ff_back(self, d):
        d = self.drops[2].backward(d) if self.drops[2].train_flg else d
        d = self.ff2.backward(d)
        d = self.drops[1].backward(d) if self.drops[1].train_flg else d
        return self.ff1.backward(ops.relu_backward(d, self._relu_out))

    def forward(self, x):
        if self.norm_first:
            x = x + self._sa(self.norm1.forward(x))
            return x + self._ff(self.norm2.forward(x))
        x = self.norm1.forward(x + self._sa(x))
        return self.norm2.forward(x + self._ff(x))

    def backward(self, dout):
        if self.norm_first:
            d = dout + self.norm2.backward(self._ff_back(dout))
            return d + self.norm1.backward(self._sa_back(d))
        d = self.norm2.backward(dout)
        d = d + self._ff_back(d)
        d = self.norm1.backward(d)
        return d + self._sa_back(d)
