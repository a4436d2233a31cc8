"""fastconv.keras' sequence layers (issue 20): Embedding, SimpleRNN, LSTM, GRU, LayerNormalization,
MultiHeadAttention and TransformerEncoder, against Keras 3 itself (torch backend; skipped where absent), the
Transformer block against torch.nn.TransformerEncoderLayer (skipped without torch), the tutorial's text
classifier, and bad arguments."""

import warnings

import numpy as np
import pytest
from conftest import TOL, TOL_DOT
from test_keras import real_keras  # noqa: F401 (the fixture: Keras 3 on torch, or a skip)

from fastconv import keras, time_layers
from fastconv.keras import layers as L

F32, D32 = TOL[np.float32], TOL_DOT[np.float32]


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _both(real, build, x):
    """The same model in Keras and fastconv, built on x, with Keras' initial weights in both."""
    km = _quiet(lambda: build(real))
    fm = build(keras)
    _quiet(lambda: km.predict(x, verbose=0))
    fm.predict(x, verbose=0)
    fm.set_weights(km.get_weights())
    return km, fm


def _sgd_step_matches(km, fm, x, y, loss="sparse_categorical_crossentropy"):
    """One train_on_batch with SGD(1.0): each weight's change is minus its gradient; compare them."""
    for m in (km, fm):
        m.compile(optimizer="sgd" if m is km else keras.optimizers.SGD(1.0), loss=loss)
    km.optimizer.learning_rate.assign(1.0)
    before = km.get_weights()
    lk = _quiet(lambda: km.train_on_batch(x, y))
    lf = fm.train_on_batch(x, y)
    np.testing.assert_allclose(lf, lk, **F32)
    for b, a, w in zip(before, km.get_weights(), fm.get_weights()):
        np.testing.assert_allclose(w - b, a - b, **D32)


# ======================================================================================================
# recurrent layers against Keras

RNN_CASES = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"return_sequences": True, "go_backwards": True}),
    ("LSTM", {}),
    ("LSTM", {"return_sequences": True, "use_bias": False}),
    ("LSTM", {"go_backwards": True, "unit_forget_bias": False}),
    ("GRU", {}),
    ("GRU", {"return_sequences": True, "go_backwards": True}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"reset_after": False, "return_sequences": True, "use_bias": False}),
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cls,kw", RNN_CASES, ids=[f"{c}-{'-'.join(k) or 'default'}" for c, k in RNN_CASES])
def test_recurrent_against_keras(real_keras, rng, cls, kw):  # noqa: F811
    def build(K):
        Lk = K.layers
        inp = K.Input((6, 5))
        h = getattr(Lk, cls)(7, **kw)(inp)
        if kw.get("return_sequences"):
            h = Lk.Flatten()(h)
        return K.Model(inp, Lk.Dense(3, activation="softmax")(h))

    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    km, fm = _both(real_keras, build, x)
    assert [w.shape for w in km.get_weights()] == [w.shape for w in fm.get_weights()]
    for a, b in zip(km.get_weights(), fm.get_weights()):  # the layout translation round-trips
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), **F32)
    _sgd_step_matches(km, fm, x, rng.integers(0, 3, 4))


@pytest.mark.filterwarnings("ignore")
def test_lstm_initial_weights_follow_keras_rules():
    layer = L.LSTM(4)
    layer.build((None, 3, 2))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (2, 16) and recurrent.shape == (4, 16) and bias.shape == (16,)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])  # unit_forget_bias: f
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)  # orthogonal rows
    gru = L.GRU(4)
    gru.build((None, 3, 2))
    assert [w.shape for w in gru.get_weights()] == [(2, 12), (4, 12), (2, 12)]
    gru = L.GRU(4, reset_after=False)
    gru.build((None, 3, 2))
    assert [w.shape for w in gru.get_weights()] == [(2, 12), (4, 12), (12,)]


@pytest.mark.filterwarnings("ignore")
def test_embedding_rnn_classifier_against_keras(real_keras, rng):  # noqa: F811
    def build(K):
        Lk = K.layers
        return K.Sequential(
            [
                Lk.Embedding(50, 6),
                Lk.LSTM(5, return_sequences=True),
                Lk.GRU(4),
                Lk.Dense(2, activation="softmax"),
            ]
        )

    x = rng.integers(0, 50, (5, 9)).astype(np.int32)
    x[0, :3] = 7  # repeated ids: their gradients add
    km, fm = _both(real_keras, build, x)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), **F32)
    _sgd_step_matches(km, fm, x, rng.integers(0, 2, 5))


@pytest.mark.filterwarnings("ignore")
def test_tutorial_text_classifier(real_keras, rng, capsys):  # noqa: F811
    def build(K):
        Lk = K.layers
        return K.Sequential(
            [
                Lk.Embedding(10000, 16, input_length=50),
                Lk.SimpleRNN(24, return_sequences=True),
                Lk.SimpleRNN(24),
                Lk.Dense(2, activation="softmax"),
            ]
        )

    x, y = rng.integers(0, 10000, (64, 50)), rng.integers(0, 2, 64)
    fm = build(keras)
    fm.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = fm.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(hist.history["loss"]) == 2 and np.isfinite(hist.history["loss"]).all()
    km = _quiet(lambda: build(real_keras))
    _quiet(lambda: km.predict(x[:2], verbose=0))
    assert fm.count_params() == km.count_params() == 10000 * 16 + (16 + 24 + 1) * 24 + (24 + 24 + 1) * 24 + 50
    lines = []
    _quiet(lambda: km.summary(print_fn=lambda s, **_: lines.append(s)))
    keras_totals = [t for t in "\n".join(lines).splitlines() if "params:" in t]
    assert len(keras_totals) == 3 and "162,210" in keras_totals[0]  # total, trainable, non-trainable
    fresh = build(keras)  # not compiled, as km: no optimizer parameters in the total
    fresh.predict(x[:2], verbose=0)
    capsys.readouterr()
    fresh.summary()
    out = capsys.readouterr().out.splitlines()
    assert [t for t in out if "params:" in t] == keras_totals
    fm.summary()  # the trained model adds Keras' line for Adam's slots
    assert " Trainable params: 162,210 (633.63 KB)" in capsys.readouterr().out


# ======================================================================================================
# layer normalisation and attention against Keras


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kw", [{}, {"epsilon": 1e-5, "center": False}, {"scale": False}])
def test_layer_normalization_against_keras(real_keras, rng, kw):  # noqa: F811
    def build(K):
        inp = K.Input((4, 6))
        h = K.layers.LayerNormalization(**kw)(K.layers.Dense(6)(inp))
        return K.Model(inp, K.layers.Dense(3, activation="softmax")(K.layers.Flatten()(h)))

    x = rng.standard_normal((5, 4, 6)).astype(np.float32)
    km, fm = _both(real_keras, build, x)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), **F32)
    _sgd_step_matches(km, fm, x, rng.integers(0, 3, 5))


MHA_CASES = [
    {"num_heads": 2, "key_dim": 3},
    {"num_heads": 3, "key_dim": 2, "value_dim": 4, "output_shape": 5},
    {"num_heads": 1, "key_dim": 4, "use_bias": False},
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kw", MHA_CASES, ids=["self", "cross-value_dim-output_shape", "no_bias"])
def test_multi_head_attention_against_keras(real_keras, rng, kw):  # noqa: F811
    cross = "value_dim" in kw

    def build(K):
        q = K.Input((5, 6))
        v = K.Input((7, 4)) if cross else q
        mha = K.layers.MultiHeadAttention(**kw)
        h = mha(q, v, K.layers.Dense(3)(v)) if cross else mha(q, q)
        out = K.layers.Dense(2, activation="softmax")(K.layers.Flatten()(h))
        return K.Model([q, v] if cross else q, out)

    x = [rng.standard_normal((3, 5, 6)).astype(np.float32)]
    if cross:
        x.append(rng.standard_normal((3, 7, 4)).astype(np.float32))
    x = x if cross else x[0]
    km, fm = _both(real_keras, build, x)
    assert [w.shape for w in km.get_weights()] == [w.shape for w in fm.get_weights()]
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), **F32)
    _sgd_step_matches(km, fm, x, rng.integers(0, 2, 3))


# ======================================================================================================
# the Transformer encoder layer against torch.nn.TransformerEncoderLayer


def _torch_layer(torch, d, nhead, ff, norm_first, eps=1e-5):
    torch.manual_seed(0)
    return torch.nn.TransformerEncoderLayer(
        d, nhead, dim_feedforward=ff, dropout=0.1, batch_first=True, norm_first=norm_first, layer_norm_eps=eps
    ).double()


def _params_from_torch(t, d, grad=False):
    """time_layers.TransformerEncoderLayer's parameter arrays (float64 copies) from a torch layer's
    parameters, or from their gradients: (the attention's 8, the other 8)."""

    def a(p):
        return np.ascontiguousarray((p.grad if grad else p).detach().numpy())

    W, b = a(t.self_attn.in_proj_weight), a(t.self_attn.in_proj_bias)
    attn = []
    for i in range(3):  # torch's in_proj stacks the (out, in) matrices of q, k and v
        attn += [np.ascontiguousarray(W[i * d : (i + 1) * d].T), b[i * d : (i + 1) * d].copy()]
    attn += [np.ascontiguousarray(a(t.self_attn.out_proj.weight).T), a(t.self_attn.out_proj.bias)]
    rest = [
        np.ascontiguousarray(a(t.linear1.weight).T),
        a(t.linear1.bias),
        np.ascontiguousarray(a(t.linear2.weight).T),
        a(t.linear2.bias),
        a(t.norm1.weight),
        a(t.norm1.bias),
        a(t.norm2.weight),
        a(t.norm2.bias),
    ]
    return attn, rest


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transformer_encoder_layer_against_torch(rng, norm_first, dtype):
    torch = pytest.importorskip("torch")
    N, T, d, nhead, ff = 3, 7, 8, 2, 12
    t = _torch_layer(torch, d, nhead, ff, norm_first).eval()  # eval: no dropout, as train_flg=False
    attn, rest = _params_from_torch(t, d)
    mine = time_layers.TransformerEncoderLayer(
        [p.astype(dtype) for p in attn],
        *(p.astype(dtype) for p in rest),
        nhead=nhead,
        dropout=0.1,
        norm_first=norm_first,
    )
    mine.train_flg = False
    x = rng.standard_normal((N, T, d))
    dout = rng.standard_normal((N, T, d))
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.tensor(dout))
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else D32
    y = mine.forward(x.astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    dx = mine.backward(dout.astype(dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    attn_g, rest_g = _params_from_torch(t, d, grad=True)
    for got, want in zip(mine.grads, attn_g + rest_g):
        np.testing.assert_allclose(got, want, **tol)


def test_transformer_encoder_keras_layer_is_the_time_layer(rng):
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    layer = L.TransformerEncoder(intermediate_dim=16, num_heads=4, dropout=0.1)
    y = layer(x)  # inference: no dropout
    w = layer.get_weights()
    assert [a.shape for a in w[:8]] == [(8, 4, 2), (4, 2)] * 3 + [(4, 2, 8), (8,)]
    assert [a.shape for a in w[8:]] == [(8, 16), (16,), (16, 8), (8,)] + [(8,)] * 4
    attn = [
        a.reshape(a.shape[0], -1) if a.ndim == 3 and i < 6 else a.reshape(-1) if i < 6 else a
        for i, a in enumerate(w[:8])
    ]
    attn[6] = w[6].reshape(8, 8)
    block = time_layers.TransformerEncoderLayer(attn, *w[8:], nhead=4, dropout=0.1)
    block.train_flg = False
    np.testing.assert_allclose(y, block.forward(x), **F32)
    model = keras.Sequential([keras.Input((5, 8)), layer, L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [a.copy() for a in model.get_weights()]
    model.fit(np.repeat(x, 4, axis=0), np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_transformer_encoder_layer_numerical_gradient(rng):
    from fastconv.functions import numerical_gradient

    d, nhead, ff = 4, 2, 6
    attn = [rng.standard_normal(s) * 0.5 for s in ((d, d), (d,)) * 4]
    rest = [rng.standard_normal(s) * 0.5 for s in ((d, ff), (ff,), (ff, d), (d,))] + [
        1 + 0.1 * rng.standard_normal(d) if i % 2 == 0 else 0.1 * rng.standard_normal(d) for i in range(4)
    ]
    x, w = rng.standard_normal((2, 3, d)), rng.standard_normal((2, 3, d))
    for norm_first in (False, True):
        block = time_layers.TransformerEncoderLayer(
            attn, *rest, nhead=nhead, dropout=0.0, norm_first=norm_first
        )

        def loss(_, block=block):
            return float(np.sum(block.forward(x) * w))

        block.forward(x)
        dx = block.backward(w)
        grads = [g.copy() for g in block.grads]
        np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
        for g, p in zip(grads, block.params):
            np.testing.assert_allclose(g, numerical_gradient(loss, p), rtol=1e-5, atol=1e-7)


def test_sequence_model_save_and_load_round_trip(rng, tmp_path):
    inp = keras.Input((6,))
    h = L.Embedding(20, 8)(inp)
    h = L.LSTM(8, return_sequences=True, go_backwards=True)(h)
    h = L.GRU(8, return_sequences=True, reset_after=False)(h)
    h = L.LayerNormalization()(L.Add()([h, L.MultiHeadAttention(2, 4, value_dim=3)(h, h)]))
    h = L.TransformerEncoder(intermediate_dim=16, num_heads=2)(h)
    h = L.SimpleRNN(5)(L.GRU(8, return_sequences=True)(h))
    model = keras.Model(inp, L.Dense(3, activation="softmax")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.integers(0, 20, (8, 6))
    model.fit(x, rng.integers(0, 3, 8), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ======================================================================================================
# bad arguments


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: L.Embedding(0, 4), ValueError, r"input_dim=0"),
        (lambda: L.Embedding(10, -2), ValueError, r"output_dim=-2"),
        (lambda: L.Embedding(10, 4, mask_zero=True), NotImplementedError, r"mask_zero"),
        (lambda: L.SimpleRNN(0), ValueError, r"units=0"),
        (lambda: L.SimpleRNN(3, activation="relu"), NotImplementedError, r"activation='relu'"),
        (
            lambda: L.LSTM(3, recurrent_activation="hard_sigmoid"),
            NotImplementedError,
            r"recurrent_activation",
        ),
        (lambda: L.GRU(3, dropout=0.2), NotImplementedError, r"dropout=0.2"),
        (lambda: L.GRU(3, dropout=2.0), ValueError, r"`dropout`: 2.0"),
        (lambda: L.LSTM(3, return_state=True), NotImplementedError, r"return_state"),
        (lambda: L.LayerNormalization(epsilon=0.0), ValueError, r"`epsilon`: 0.0"),
        (lambda: L.LayerNormalization(axis="x"), TypeError, r"'axis'"),
        (lambda: L.MultiHeadAttention(0, 4), ValueError, r"num_heads=0"),
        (lambda: L.MultiHeadAttention(2, 4, dropout=1.5), ValueError, r"`dropout`: 1.5"),
        (lambda: L.TransformerEncoder(16, 4, activation="gelu"), NotImplementedError, r"activation='gelu'"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"expected ndim=3, found ndim=2"):
        L.LSTM(3)(rng.standard_normal((2, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=r"multiple of num_heads=3"):
        L.TransformerEncoder(8, 3)(rng.standard_normal((2, 5, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"non-integer"):
        L.Embedding(10, 2)(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"idx|id"):
        L.Embedding(10, 2)(np.array([[3, 10]]))
    with pytest.raises(NotImplementedError, match=r"axis=1"):
        L.LayerNormalization(axis=1)(rng.standard_normal((2, 5, 3)).astype(np.float32))
