"""The sequel's sequence models on :mod:`fastconv.time_layers`: ``BetterRnnlm`` (ch06), ``Seq2seq`` and
``PeekySeq2seq`` (ch07), ``AttentionSeq2seq`` (ch08), an Embedding + RNN / LSTM text classifier (the Keras
tutorial's model in the sequel's terms) and a Transformer-encoder text classifier.

Each model keeps the sequel's ``params`` / ``grads`` lists (the layers' own arrays, in the sequel's order,
so a list saved by the sequel's ``BaseModel.save_params`` loads in place) and its ``forward`` / ``backward``
/ ``reset_state`` / ``generate`` methods. ``save_params`` writes ``.npz`` (no pickle); ``load_params`` also
reads the sequel's pickled lists of float16 arrays, through :func:`fastconv.io.load_param_list` (no code runs).

Training helpers the sequel keeps in ``common/util.py`` and ``common/trainer.py`` are here as functions:
:func:`clip_grads` and :func:`unique_params` (its ``remove_duplicate``: a tied weight listed twice, once
transposed, is updated once with the sum of both gradients).
"""

from __future__ import annotations

import numpy as np

from .. import _checks as chk
from .. import io as _io
from .. import ops
from .. import time_layers as tl
from .._backend import is_half

__all__ = [
    "AttentionSeq2seq",
    "BetterRnnlm",
    "PeekySeq2seq",
    "RnnClassifier",
    "Seq2seq",
    "TransformerClassifier",
    "clip_grads",
    "unique_params",
]


# ======================================================================================================
# shared


def _randn(rng, shape, scale, dtype):
    return (rng.standard_normal(shape) * scale).astype(dtype)


class SequelModel:
    """``params`` / ``grads`` lists and the sequel's ``save_params`` / ``load_params``."""

    params: list
    grads: list

    def save_params(self, file_name="params.npz", dtype=None):
        """Write ``params`` as a ``.npz`` list (:func:`fastconv.io.save_param_list`), cast to ``dtype`` if
        given (the sequel saves float16)."""
        _io.save_param_list(self.params, file_name, dtype=dtype)

    def load_params(self, file_name):
        """Read a list of arrays (``.npz`` from :meth:`save_params`, or the sequel's pickle) into ``params``
        in place, checking their number and shapes, cast to each parameter's dtype."""
        for p, v in zip(self.params, _io.load_param_list(file_name, like=self.params)):
            p[...] = v


def unique_params(params, grads):
    """The sequel's ``remove_duplicate``: drop a parameter that is the same array (or its transpose) as an
    earlier one, adding its gradient into that one's. Returns new lists; gradients are changed in place."""
    params, grads = list(params), list(grads)
    i = 0
    while i < len(params):
        j = i + 1
        while j < len(params):
            a, b = params[i], params[j]
            if a is b or (a.ndim == 2 and b.ndim == 2 and b.base is a and a.T.shape == b.shape
                          and np.shares_memory(a, b)):
                grads[i] += grads[j] if a.shape == b.shape else grads[j].T
                del params[j], grads[j]
            else:
                j += 1
        i += 1
    return params, grads


def clip_grads(grads, max_norm):
    """Scale every gradient in place so that their joint L2 norm is at most ``max_norm`` (the sequel's)."""
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)))
    rate = max_norm / (total + 1e-6)
    if rate < 1:
        for g in grads:
            g *= g.dtype.type(rate)
    return total


# ======================================================================================================
# language model (ch06)


class BetterRnnlm(SequelModel):
    """The sequel's ch06 ``BetterRnnlm``: embedding, two stateful LSTMs with dropout before and after each,
    and an affine output layer tied to the embedding (``TimeAffine(embed_W.T, b)``), so ``params`` lists
    ``embed_W`` and its transpose (use :func:`unique_params` before an optimizer).

    Parameters
    ----------
    vocab_size, wordvec_size, hidden_size : int
        ``wordvec_size`` must equal ``hidden_size`` for the tied output layer (as in the sequel: 650, 650).
    dropout_ratio : float
    rng : numpy.random.Generator, optional
        Initial weights as the sequel draws them (normal, embedding / 100, LSTM weights / sqrt(fan-in),
        zero biases).
    dtype : float32 (the sequel's) or float64
    """

    def __init__(self, vocab_size=10000, wordvec_size=650, hidden_size=650, dropout_ratio=0.5, *, rng=None,
                 dtype=np.float32):
        if wordvec_size != hidden_size:
            raise ValueError(f"wordvec_size: expected hidden_size={hidden_size} (tied output layer), got "
                             f"{wordvec_size}")
        rng = np.random.default_rng() if rng is None else rng
        V, D, H = vocab_size, wordvec_size, hidden_size
        embed_W = _randn(rng, (V, D), 1 / 100, dtype)
        lstm = [(_randn(rng, (d, 4 * H), 1 / np.sqrt(d), dtype), _randn(rng, (H, 4 * H), 1 / np.sqrt(H), dtype),
                 np.zeros(4 * H, dtype)) for d in (D, H)]
        self.layers = [
            tl.TimeEmbedding(embed_W),
            tl.TimeDropout(dropout_ratio),
            tl.TimeLSTM(*lstm[0], stateful=True),
            tl.TimeDropout(dropout_ratio),
            tl.TimeLSTM(*lstm[1], stateful=True),
            tl.TimeDropout(dropout_ratio),
            tl.TimeAffine(embed_W.T, np.zeros(V, dtype)),
        ]
        self.loss_layer = tl.TimeSoftmaxWithLoss()
        self.lstm_layers = [self.layers[2], self.layers[4]]
        self.drop_layers = [self.layers[1], self.layers[3], self.layers[5]]
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]

    def predict(self, xs, train_flg=False):
        for layer in self.drop_layers:
            layer.train_flg = train_flg
        for layer in self.layers:
            xs = layer.forward(xs)
        return xs

    def forward(self, xs, ts, train_flg=True):
        return self.loss_layer.forward(self.predict(xs, train_flg), ts)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def reset_state(self):
        for layer in self.lstm_layers:
            layer.reset_state()

    def generate(self, start_id, skip_ids=None, sample_size=100, rng=None):
        """Sample ``sample_size`` ids one at a time from the softmax (the sequel's ``BetterRnnlmGen``),
        starting from ``start_id`` (an id or a list of ids to read first); ids in ``skip_ids`` are not kept.
        Uses and advances the LSTM state."""
        rng = np.random.default_rng() if rng is None else rng
        prime = [start_id] if np.isscalar(start_id) else list(start_id)
        for x in prime[:-1]:
            self.predict(np.array([[x]]))
        word_ids, x = list(prime), prime[-1]
        while len(word_ids) < sample_size:
            score = self.predict(np.array([[x]])).reshape(-1).astype(np.float64)
            p = np.exp(score - score.max())
            p /= p.sum()
            sampled = int(rng.choice(len(p), p=p))
            if skip_ids is None or sampled not in skip_ids:
                x = sampled
                word_ids.append(x)
        return word_ids


# ======================================================================================================
# seq2seq (ch07)


def _greedy(scores, n_rows, start_id, sample_size):
    """Greedy decoding: ``scores`` maps ids (n_rows, 1) to scores (n_rows, 1, V) and advances the decoder's
    state; it is fed ``start_id``, then its own argmax, ``sample_size`` times. Returns ids (n_rows,
    sample_size); ``sample_size`` 0 gives (n_rows, 0)."""
    sample_size = chk.integer(sample_size, "sample_size", 0)
    x = np.full((n_rows, 1), start_id, dtype=np.int64)
    out = np.empty((n_rows, sample_size), dtype=np.int64)
    for i in range(sample_size):
        x = scores(x).argmax(axis=2)
        out[:, i] = x[:, 0]
    return out


class Encoder:
    """Embedding + LSTM; ``forward`` returns the last hidden state (N, H)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng, dtype):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.embed = tl.TimeEmbedding(_randn(rng, (V, D), 1 / 100, dtype))
        self.lstm = tl.TimeLSTM(_randn(rng, (D, 4 * H), 1 / np.sqrt(D), dtype),
                                _randn(rng, (H, 4 * H), 1 / np.sqrt(H), dtype), np.zeros(4 * H, dtype))
        self.params = self.embed.params + self.lstm.params
        self.grads = self.embed.grads + self.lstm.grads
        self.hs = None

    def forward(self, xs):
        self.hs = self.lstm.forward(self.embed.forward(xs))
        return self.hs[:, -1, :]

    def backward(self, dh):
        dhs = np.zeros_like(self.hs)
        dhs[:, -1, :] = dh
        self.embed.backward(self.lstm.backward(dhs))


class Decoder:
    """Embedding + LSTM started from the encoder's state + affine scores; ``peeky`` also feeds that state
    to the LSTM and to the affine layer at every step (the sequel's ``PeekyDecoder``)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng, dtype, peeky=False):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.peeky, self.H = peeky, H
        d_in, h_out = (H + D, H + H) if peeky else (D, H)
        self.embed = tl.TimeEmbedding(_randn(rng, (V, D), 1 / 100, dtype))
        self.lstm = tl.TimeLSTM(_randn(rng, (d_in, 4 * H), 1 / np.sqrt(d_in), dtype),
                                _randn(rng, (H, 4 * H), 1 / np.sqrt(H), dtype), np.zeros(4 * H, dtype),
                                stateful=True)
        self.affine = tl.TimeAffine(_randn(rng, (h_out, V), 1 / np.sqrt(h_out), dtype), np.zeros(V, dtype))
        self.params = self.embed.params + self.lstm.params + self.affine.params
        self.grads = self.embed.grads + self.lstm.grads + self.affine.grads

    def _scores(self, xs, h):
        out = self.embed.forward(xs)
        if self.peeky:
            hs = np.broadcast_to(h[:, None, :], (h.shape[0], xs.shape[1], h.shape[1]))
            out = self.lstm.forward(np.concatenate((hs, out), axis=2))
            return self.affine.forward(np.concatenate((hs, out), axis=2))
        return self.affine.forward(self.lstm.forward(out))

    def forward(self, xs, h):
        self.lstm.set_state(h)
        return self._scores(xs, h)

    def backward(self, dscore):
        dout = self.affine.backward(dscore)
        H = self.H
        if not self.peeky:
            self.embed.backward(self.lstm.backward(dout))
            return self.lstm.dh
        dhs = dout[:, :, :H].sum(axis=1)
        dout = self.lstm.backward(dout[:, :, H:])
        self.embed.backward(dout[:, :, H:])
        return self.lstm.dh + dhs + dout[:, :, :H].sum(axis=1)

    def generate(self, h, start_id, sample_size):
        """Greedy decoding of ``sample_size`` ids for every row of ``h`` (N, H): an int array (N,
        sample_size) (the sequel decodes one row and returns a list)."""
        h = np.asarray(h)
        h = h.reshape(1, -1) if h.ndim == 1 else h
        self.lstm.set_state(h)
        return _greedy(lambda x: self._scores(x, h), h.shape[0], start_id, sample_size)


class Seq2seq(SequelModel):
    """The sequel's ch07 ``Seq2seq`` (``peeky=False``); ``PeekySeq2seq`` feeds the encoder's state to every
    decoder step. ``forward(xs, ts)``: the decoder reads ``ts[:, :-1]`` and predicts ``ts[:, 1:]``."""

    peeky = False

    def __init__(self, vocab_size, wordvec_size, hidden_size, *, rng=None, dtype=np.float32):
        rng = np.random.default_rng() if rng is None else rng
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, rng, dtype)
        self.decoder = Decoder(vocab_size, wordvec_size, hidden_size, rng, dtype, peeky=self.peeky)
        self.softmax = tl.TimeSoftmaxWithLoss()
        self.params = self.encoder.params + self.decoder.params
        self.grads = self.encoder.grads + self.decoder.grads

    def forward(self, xs, ts):
        h = self.encoder.forward(xs)
        return self.softmax.forward(self.decoder.forward(ts[:, :-1], h), ts[:, 1:])

    def backward(self, dout=1):
        self.encoder.backward(self.decoder.backward(self.softmax.backward(dout)))

    def generate(self, xs, start_id, sample_size):
        return self.decoder.generate(self.encoder.forward(xs), start_id, sample_size)


class PeekySeq2seq(Seq2seq):
    __doc__ = Seq2seq.__doc__
    peeky = True


# ======================================================================================================
# seq2seq with attention (ch08)


class AttentionDecoder:
    """The sequel's ``AttentionDecoder``: embedding, an LSTM started from the encoder's last state, attention
    of every decoder state over all encoder states (:class:`fastconv.time_layers.TimeAttention`), and an affine
    layer over the concatenation (context, decoder state)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng, dtype):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.embed = tl.TimeEmbedding(_randn(rng, (V, D), 1 / 100, dtype))
        self.lstm = tl.TimeLSTM(_randn(rng, (D, 4 * H), 1 / np.sqrt(D), dtype),
                                _randn(rng, (H, 4 * H), 1 / np.sqrt(H), dtype), np.zeros(4 * H, dtype),
                                stateful=True)
        self.attention = tl.TimeAttention()
        self.affine = tl.TimeAffine(_randn(rng, (2 * H, V), 1 / np.sqrt(2 * H), dtype), np.zeros(V, dtype))
        layers = (self.embed, self.lstm, self.attention, self.affine)
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]

    def _scores(self, xs, enc_hs):
        dec_hs = self.lstm.forward(self.embed.forward(xs))
        c = self.attention.forward(enc_hs, dec_hs)
        return self.affine.forward(np.concatenate((c, dec_hs), axis=2))

    def forward(self, xs, enc_hs):
        self.lstm.set_state(enc_hs[:, -1])
        return self._scores(xs, enc_hs)

    def backward(self, dscore):
        """Returns the gradient of the encoder states (N, S, H)."""
        dout = self.affine.backward(dscore)
        H = dout.shape[2] // 2
        denc_hs, ddec_hs = self.attention.backward(np.ascontiguousarray(dout[:, :, :H]))
        self.embed.backward(self.lstm.backward(ddec_hs + dout[:, :, H:]))
        denc_hs[:, -1] += self.lstm.dh
        return denc_hs

    def generate(self, enc_hs, start_id, sample_size):
        """Greedy decoding of ``sample_size`` ids for every row of ``enc_hs`` (N, S, H): an int array (N,
        sample_size) (the sequel decodes one row and returns a list)."""
        self.lstm.set_state(enc_hs[:, -1])
        return _greedy(lambda x: self._scores(x, enc_hs), enc_hs.shape[0], start_id, sample_size)


class AttentionSeq2seq(SequelModel):
    """The sequel's ch08 ``AttentionSeq2seq``: an encoder whose states (all steps) the
    :class:`AttentionDecoder` attends to. ``params`` in the sequel's order: encoder embedding, LSTM (Wx, Wh,
    b); decoder embedding, LSTM (Wx, Wh, b), affine (W (2H, V), b). ``forward(xs, ts)``: the decoder reads
    ``ts[:, :-1]`` and predicts ``ts[:, 1:]``."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, *, rng=None, dtype=np.float32):
        rng = np.random.default_rng() if rng is None else rng
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, rng, dtype)
        self.decoder = AttentionDecoder(vocab_size, wordvec_size, hidden_size, rng, dtype)
        self.softmax = tl.TimeSoftmaxWithLoss()
        self.params = self.encoder.params + self.decoder.params
        self.grads = self.encoder.grads + self.decoder.grads

    def forward(self, xs, ts):
        self.encoder.forward(xs)
        return self.softmax.forward(self.decoder.forward(ts[:, :-1], self.encoder.hs), ts[:, 1:])

    def backward(self, dout=1):
        denc_hs = self.decoder.backward(self.softmax.backward(dout))
        self.encoder.embed.backward(self.encoder.lstm.backward(denc_hs))

    def generate(self, xs, start_id, sample_size):
        self.encoder.forward(xs)
        return self.decoder.generate(self.encoder.hs, start_id, sample_size)


# ======================================================================================================
# text classifier


class RnnClassifier(SequelModel):
    """Embedding + RNN (``cell="rnn"``, tanh) or LSTM (``cell="lstm"``) + affine + softmax, classifying a
    sequence (N, T) of ids from the last hidden state: the Keras tutorial's ``Embedding`` + ``SimpleRNN`` +
    ``Dense(softmax)`` in the sequel's layers (one recurrent layer)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, n_classes, cell="rnn", *, rng=None,
                 dtype=np.float32):
        if cell not in ("rnn", "lstm"):
            raise ValueError(f"cell: expected 'rnn' or 'lstm', got {cell!r}")
        rng = np.random.default_rng() if rng is None else rng
        V, D, H, G = vocab_size, wordvec_size, hidden_size, 4 if cell == "lstm" else 1
        self.embed = tl.TimeEmbedding(_randn(rng, (V, D), 1 / 100, dtype))
        Wx, Wh = _randn(rng, (D, G * H), 1 / np.sqrt(D), dtype), _randn(rng, (H, G * H), 1 / np.sqrt(H), dtype)
        b = np.zeros(G * H, dtype)
        self.rnn = tl.TimeLSTM(Wx, Wh, b) if cell == "lstm" else tl.TimeRNN(Wx, Wh, b)
        self.affine = tl.Affine(_randn(rng, (H, n_classes), 1 / np.sqrt(H), dtype), np.zeros(n_classes, dtype))
        self.loss_layer = tl.SoftmaxWithLoss()
        layers = (self.embed, self.rnn, self.affine)
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]
        self.hs = None

    def predict(self, xs):
        self.hs = self.rnn.forward(self.embed.forward(xs))
        return self.affine.forward(self.hs[:, -1, :])

    def forward(self, xs, t):
        return self.loss_layer.forward(self.predict(xs), t)

    def backward(self, dout=1):
        dh = self.affine.backward(self.loss_layer.backward(dout))
        dhs = np.zeros_like(self.hs)
        dhs[:, -1, :] = dh
        self.embed.backward(self.rnn.backward(dhs))


class TransformerClassifier(SequelModel):
    """Token embedding plus a learned position embedding, ``num_layers`` Transformer encoder layers
    (:class:`fastconv.time_layers.TransformerEncoderLayer`: torch's post-norm layer, ReLU feed-forward), the
    mean of the last layer's outputs over the tokens that are not ``pad_id``, affine + softmax.

    Attention has no padding mask (``MultiHeadAttention`` has none): every position, padding included, is
    attended to; only the pooling leaves padding out. ``params``: token embedding (V, d_model), position
    embedding (max_len, d_model), each encoder layer's 16 (attention's Wq, bq, Wk, bk, Wv, bv, Wo, bo, then
    W1, b1, W2, b2, gamma1, beta1, gamma2, beta2), affine W (d_model, n_classes), b.

    Parameters
    ----------
    vocab_size, d_model, nhead, dim_feedforward, n_classes : int
    num_layers : int
    max_len : int
        The longest sequence ``forward`` accepts (rows of the position embedding).
    dropout : float
        The encoder layers' dropout (attention weights, after attention, inside and after the feed-forward).
    pad_id : int
        The padding id left out of the mean (``datasets.load_fortunes`` pads with 0).
    rng : numpy.random.Generator, optional
        Initial weights: embeddings normal / 100, weight matrices normal / sqrt(fan-in), zero biases, layer
        norms gamma 1, beta 0.
    dtype : float32 or float64
    """

    def __init__(self, vocab_size, d_model, nhead, dim_feedforward, n_classes, num_layers=1, max_len=50,
                 dropout=0.1, *, pad_id=0, rng=None, dtype=np.float32):
        if d_model % nhead:
            raise ValueError(f"nhead: expected a divisor of d_model={d_model}, got {nhead}")
        rng = np.random.default_rng() if rng is None else rng
        V, D, F = vocab_size, d_model, dim_feedforward
        self.embed = tl.TimeEmbedding(_randn(rng, (V, D), 1 / 100, dtype))
        self.pos_W = _randn(rng, (max_len, D), 1 / 100, dtype)
        self.pos_dW = np.zeros_like(self.pos_W)
        self.blocks = []
        for _ in range(num_layers):
            attn = []
            for _ in range(4):  # q, k, v, out
                attn += [_randn(rng, (D, D), 1 / np.sqrt(D), dtype), np.zeros(D, dtype)]
            self.blocks.append(tl.TransformerEncoderLayer(
                attn, _randn(rng, (D, F), 1 / np.sqrt(D), dtype), np.zeros(F, dtype),
                _randn(rng, (F, D), 1 / np.sqrt(F), dtype), np.zeros(D, dtype),
                np.ones(D, dtype), np.zeros(D, dtype), np.ones(D, dtype), np.zeros(D, dtype),
                nhead=nhead, dropout=dropout))
        self.affine = tl.Affine(_randn(rng, (D, n_classes), 1 / np.sqrt(D), dtype), np.zeros(n_classes, dtype))
        self.loss_layer = tl.SoftmaxWithLoss()
        self.pad_id = pad_id
        self.params = self.embed.params + [self.pos_W]
        self.grads = self.embed.grads + [self.pos_dW]
        for layer in self.blocks + [self.affine]:
            self.params += layer.params
            self.grads += layer.grads
        self._weights = None

    def predict(self, xs, train_flg=False):
        """Class scores (N, n_classes) of id sequences xs (N, T), T <= max_len."""
        xs = np.asarray(xs)
        T, max_len = xs.shape[1], self.pos_W.shape[0]
        if T > max_len:
            raise ValueError(f"xs: expected at most max_len={max_len} steps, got shape {xs.shape}")
        h = self.embed.forward(xs) + self.pos_W[:T]
        for block in self.blocks:
            block.train_flg = train_flg
            h = block.forward(h)
        # mean over the tokens that are not padding; a row of padding only gets a zero vector
        keep = (xs != self.pad_id).astype(h.dtype)
        self._weights = keep / np.maximum(keep.sum(axis=1, keepdims=True), 1)
        if is_half(h.dtype):  # NumPy's einsum has no bfloat16 loop: the weight-sum kernel (float32 sums)
            return self.affine.forward(ops.weight_sum_forward(h, self._weights))
        return self.affine.forward(np.einsum("nt,ntd->nd", self._weights, h))

    def forward(self, xs, t, train_flg=True):
        return self.loss_layer.forward(self.predict(xs, train_flg), t)

    def backward(self, dout=1):
        dpooled = self.affine.backward(self.loss_layer.backward(dout))
        dh = self._weights[:, :, None] * dpooled[:, None, :]
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        T = dh.shape[1]
        self.pos_dW[...] = 0
        self.pos_dW[:T] = dh.sum(axis=0)
        self.embed.backward(dh)
