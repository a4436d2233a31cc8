"""fastconv.models.sequence (the sequel's BetterRnnlm, Seq2seq / PeekySeq2seq / AttentionSeq2seq, an RNN
classifier and a Transformer classifier on fastconv.time_layers) and fastconv.io's parameter lists: numerical gradients of each model in float64, the
tied weight's gradient, and the sequel's ``BaseModel.save_params`` files (pickled lists of float16 arrays) read
through the safe reader into a model; hostile or mismatched files are refused.
"""

import pickle

import numpy as np
import pytest
from fastconv import io as fio
from fastconv.models.sequence import (
    AttentionSeq2seq,
    BetterRnnlm,
    PeekySeq2seq,
    RnnClassifier,
    Seq2seq,
    TransformerClassifier,
    clip_grads,
    unique_params,
)
from fastconv.reference import layernorm as ref_ln
from fastconv.reference import sdpa as ref_sdpa
from fastconv.reference import time_layers as ref_tl

# ======================================================================================================
# helpers


def numerical_check(model, loss, n_per_param=4, eps=1e-6, seed=0):
    """Central differences at a few elements of each unique parameter against the model's gradient."""
    loss()
    model.backward()
    params, grads = unique_params(model.params, model.grads)
    grads = [g.copy() for g in grads]
    rng = np.random.default_rng(seed)
    for k, (p, g) in enumerate(zip(params, grads)):
        for _ in range(n_per_param):
            idx = tuple(int(rng.integers(s)) for s in p.shape)
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            num = (up - down) / (2 * eps)
            assert abs(num - g[idx]) <= 1e-6 + 1e-5 * abs(num), f"param {k} {p.shape} at {idx}: {num} vs {g[idx]}"


# ======================================================================================================
# gradients


def test_better_rnnlm_gradients_float64():
    rng = np.random.default_rng(1)
    model = BetterRnnlm(11, 6, 6, 0.0, rng=rng, dtype=np.float64)
    for p in model.params[1:]:  # non-zero biases so that every term is exercised
        p[...] += rng.standard_normal(p.shape) * 0.1
    xs, ts = rng.integers(0, 11, (3, 5)), rng.integers(0, 11, (3, 5))

    def loss():
        model.reset_state()
        return float(model.forward(xs, ts))

    assert len(model.params) == 9 and np.shares_memory(model.params[0], model.params[7])
    numerical_check(model, loss)


@pytest.mark.parametrize("cls", [Seq2seq, PeekySeq2seq, AttentionSeq2seq])
def test_seq2seq_gradients_float64(cls):
    rng = np.random.default_rng(2)
    model = cls(13, 4, 5, rng=rng, dtype=np.float64)
    for p in model.params:
        p[...] += rng.standard_normal(p.shape) * 0.1
    xs, ts = rng.integers(0, 13, (3, 7)), rng.integers(0, 13, (3, 5))
    numerical_check(model, lambda: float(model.forward(xs, ts)))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_classifier_gradients_float64(cell):
    rng = np.random.default_rng(3)
    model = RnnClassifier(17, 4, 5, 3, cell, rng=rng, dtype=np.float64)
    xs, t = rng.integers(0, 17, (4, 6)), rng.integers(0, 3, 4)
    numerical_check(model, lambda: float(model.forward(xs, t)))


def test_attention_seq2seq_loss_against_the_reference_layers():
    """The sequel's AttentionSeq2seq written with fastconv.reference's time layers, on the same weights."""
    rng = np.random.default_rng(6)
    model = AttentionSeq2seq(11, 3, 6, rng=rng, dtype=np.float64)
    for p in model.params:
        p[...] += rng.standard_normal(p.shape) * 0.3
    assert [p.shape for p in model.params][4:] == [(11, 3), (3, 24), (6, 24), (24,), (12, 11), (11,)]
    xs, ts = rng.integers(0, 11, (4, 6)), rng.integers(0, 11, (4, 5))
    e_W, e_Wx, e_Wh, e_b, d_W, d_Wx, d_Wh, d_b, a_W, a_b = model.params
    enc_hs = ref_tl.TimeLSTM(e_Wx, e_Wh, e_b).forward(ref_tl.TimeEmbedding(e_W).forward(xs))
    dec = ref_tl.TimeLSTM(d_Wx, d_Wh, d_b, stateful=True)
    dec.set_state(enc_hs[:, -1])
    dec_hs = dec.forward(ref_tl.TimeEmbedding(d_W).forward(ts[:, :-1]))
    c = ref_tl.TimeAttention().forward(enc_hs, dec_hs)
    score = ref_tl.TimeAffine(a_W, a_b).forward(np.concatenate((c, dec_hs), axis=2))
    want = ref_tl.TimeSoftmaxWithLoss().forward(score, ts[:, 1:])
    np.testing.assert_allclose(float(model.forward(xs, ts)), want, rtol=1e-10)


def _transformer_classifier_loss(model, xs, t, nhead):
    """The classifier's loss from its parameters, in NumPy with fastconv.reference's attention and layer
    norm: post-norm encoder layers without dropout, the mean over non-padding tokens, softmax cross-entropy
    (the book's log(y + 1e-7))."""
    embed_W, pos_W, *rest = model.params
    N, T = xs.shape
    h = embed_W[xs] + pos_W[:T]
    D = h.shape[2]
    E = D // nhead

    def heads(a):
        return a.reshape(N, T, nhead, E).transpose(0, 2, 1, 3).reshape(N * nhead, T, E)

    for k in range(len(model.blocks)):
        Wq, bq, Wk, bk, Wv, bv, Wo, bo, W1, b1, W2, b2, g1, be1, g2, be2 = rest[16 * k:16 * (k + 1)]
        o, _ = ref_sdpa.sdpa_forward(heads(h @ Wq + bq), heads(h @ Wk + bk), heads(h @ Wv + bv),
                                     1 / np.sqrt(E))
        o = o.reshape(N, nhead, T, E).transpose(0, 2, 1, 3).reshape(N, T, D)
        x = ref_ln.layernorm_forward(h + o @ Wo + bo, g1, be1)[0]
        h = ref_ln.layernorm_forward(x + np.maximum(x @ W1 + b1, 0) @ W2 + b2, g2, be2)[0]
    keep = xs != model.pad_id
    pooled = np.stack([h[n][keep[n]].mean(axis=0) if keep[n].any() else np.zeros(h.shape[2])
                       for n in range(N)])
    s = pooled @ rest[-2] + rest[-1]
    y = np.exp(s - s.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    return -np.mean(np.log(y[np.arange(N), t] + 1e-7))


def _padded_ids(rng, V, shape):
    xs = rng.integers(1, V, shape)
    for n in range(shape[0]):  # front padding, as load_fortunes pads; row 0 keeps every token
        xs[n, : n % shape[1]] = 0
    return xs


@pytest.mark.parametrize("num_layers", [1, 2])
def test_transformer_classifier_loss_against_reference(num_layers):
    rng = np.random.default_rng(8)
    model = TransformerClassifier(19, 8, 2, 12, 3, num_layers, max_len=9, dropout=0.1, rng=rng,
                                  dtype=np.float64)
    for p in model.params:  # non-trivial biases, norms and position rows
        p[...] += rng.standard_normal(p.shape) * 0.3
    xs, t = _padded_ids(rng, 19, (5, 7)), rng.integers(0, 3, 5)
    xs[4] = 0  # a row of padding only
    got = float(model.forward(xs, t, train_flg=False))
    np.testing.assert_allclose(got, _transformer_classifier_loss(model, xs, t, 2), rtol=1e-10)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_transformer_classifier_gradients_float64(num_layers):
    rng = np.random.default_rng(9)
    model = TransformerClassifier(17, 6, 2, 10, 3, num_layers, max_len=8, dropout=0.0, rng=rng,
                                  dtype=np.float64)
    for p in model.params:
        p[...] += rng.standard_normal(p.shape) * 0.3
    assert len(model.params) == 2 + 16 * num_layers + 2
    xs, t = _padded_ids(rng, 17, (4, 6)), rng.integers(0, 3, 4)
    numerical_check(model, lambda: float(model.forward(xs, t)), n_per_param=3)
    # position rows past the sequence get no gradient
    model.forward(xs, t)
    model.backward()
    assert not model.grads[1][6:].any() and model.grads[1][:6].any()


def test_transformer_classifier_dropout_is_training_only():
    rng = np.random.default_rng(10)
    model = TransformerClassifier(11, 4, 2, 8, 2, max_len=5, dropout=0.5, rng=rng, dtype=np.float64)
    xs = _padded_ids(rng, 11, (3, 5))
    np.testing.assert_array_equal(model.predict(xs), model.predict(xs))
    assert not np.allclose(model.predict(xs, train_flg=True), model.predict(xs))


def test_transformer_classifier_bad_input():
    with pytest.raises(ValueError, match=r"nhead: expected a divisor of d_model=6, got 4"):
        TransformerClassifier(10, 6, 4, 8, 2)
    model = TransformerClassifier(10, 4, 2, 8, 2, max_len=3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"xs: expected at most max_len=3 steps, got shape \(2, 4\)"):
        model.predict(np.ones((2, 4), dtype=np.int64))


def test_unique_params_adds_the_tied_gradient():
    model = BetterRnnlm(7, 3, 3, 0.0, rng=np.random.default_rng(0), dtype=np.float64)
    model.reset_state()
    model.forward(np.zeros((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64))
    model.backward()
    embed_grad, affine_grad = model.grads[0].copy(), model.grads[7].copy()
    params, grads = unique_params(model.params, model.grads)
    assert len(params) == 8 and params[0] is model.params[0] and params[7] is model.params[8]
    np.testing.assert_allclose(grads[0], embed_grad + affine_grad.T)


def test_clip_grads_scales_to_the_norm():
    grads = [np.full(4, 3.0), np.full((2, 2), 4.0)]
    norm = clip_grads(grads, 1.0)
    assert norm == pytest.approx(10.0)
    assert np.sqrt(sum(np.sum(g**2) for g in grads)) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("cls", [PeekySeq2seq, AttentionSeq2seq])
def test_generate_matches_argmax_of_forward(cls):
    rng = np.random.default_rng(4)
    model = cls(9, 4, 6, rng=rng, dtype=np.float64)
    for p in model.params:
        p[...] += rng.standard_normal(p.shape)
    xs = rng.integers(0, 9, (5, 4))
    out = model.generate(xs, 2, 3)
    # teacher-forcing the greedy output reproduces it
    ts = np.concatenate((np.full((5, 1), 2), out), axis=1)
    h = model.encoder.forward(xs)
    scores = model.decoder.forward(ts[:, :-1], model.encoder.hs if cls is AttentionSeq2seq else h)
    np.testing.assert_array_equal(scores.argmax(axis=2), out)


@pytest.mark.parametrize("cls", [Seq2seq, AttentionSeq2seq])
def test_generate_zero_steps_and_bad_sample_size(cls):
    model = cls(9, 4, 6, rng=np.random.default_rng(5), dtype=np.float64)
    xs = np.random.default_rng(6).integers(0, 9, (3, 4))
    out = model.generate(xs, 2, 0)
    assert out.shape == (3, 0) and out.dtype == np.int64
    with pytest.raises(ValueError, match=r"^sample_size must be >= 0, got -1$"):
        model.generate(xs, 2, -1)
    with pytest.raises(TypeError, match=r"^sample_size: expected an int, got float 2.0$"):
        model.generate(xs, 2, 2.0)


# ======================================================================================================
# the sequel's save_params files


@pytest.mark.parametrize("protocol", [2, 3, 4, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_sequel_pickle_loads_into_better_rnnlm(tmp_path, protocol):
    src = BetterRnnlm(13, 8, 8, rng=np.random.default_rng(5))
    path = tmp_path / "BetterRnnlm.pkl"
    with open(path, "wb") as f:  # what the sequel's BaseModel.save_params writes
        pickle.dump([p.astype(np.float16) for p in src.params], f, protocol=protocol)
    dst = BetterRnnlm(13, 8, 8, rng=np.random.default_rng(6))
    ids = [id(p) for p in dst.params]
    dst.load_params(str(path))
    assert [id(p) for p in dst.params] == ids  # loaded in place, as the sequel's load_params
    for a, b in zip(src.params, dst.params):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))
    assert np.shares_memory(dst.params[0], dst.params[7])
    # the loaded model computes what the saved one computes with its weights rounded to float16
    for p in src.params:
        p[...] = p.astype(np.float16)
    xs, ts = np.arange(6).reshape(2, 3), np.arange(1, 7).reshape(2, 3)
    src.reset_state()
    np.testing.assert_allclose(float(dst.forward(xs, ts, train_flg=False)),
                               float(src.forward(xs, ts, train_flg=False)), rtol=1e-6)


def test_save_param_list_roundtrip(tmp_path):
    src = PeekySeq2seq(10, 3, 4, rng=np.random.default_rng(7))
    src.save_params(str(tmp_path / "p.npz"), dtype=np.float16)
    dst = PeekySeq2seq(10, 3, 4, rng=np.random.default_rng(8))
    dst.load_params(str(tmp_path / "p.npz"))
    for a, b in zip(src.params, dst.params):
        np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_hostile_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([np.zeros(3, np.float16), _Evil()], protocol=2))
    model = RnnClassifier(5, 2, 2, 2, rng=np.random.default_rng(0))
    with pytest.raises(fio.ParamFileError, match="evil.pkl"):
        model.load_params(str(path))


@pytest.mark.parametrize(
    "obj, msg",
    [
        ({"W": np.zeros(2)}, "expected a pickled list of arrays, got dict"),
        ([np.zeros(2, np.float16)], "holds 1 arrays, the model has 6 parameters"),
        (["text"] * 6, "is a str, expected an ndarray"),
    ],
)
def test_mismatched_pickles_are_refused(tmp_path, obj, msg):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(obj))
    model = RnnClassifier(5, 2, 2, 2, rng=np.random.default_rng(0))
    with pytest.raises((fio.ParamFileError, TypeError), match=msg):
        model.load_params(str(path))


def test_shape_mismatch_is_refused(tmp_path):
    model = RnnClassifier(5, 2, 2, 2, rng=np.random.default_rng(0))
    arrays = [p.astype(np.float16) for p in model.params]
    arrays[1] = np.zeros((3, 3), np.float16)
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(fio.ParamMismatchError, match=r"array 1 has shape \(3, 3\), expected \(2, 2\)"):
        model.load_params(str(path))
