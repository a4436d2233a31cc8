"""fastconv.time_layers (the sequel's common/time_layers.py) and its ops against
fastconv.reference.time_layers: forward, backward and every gradient in float32 and float64 for each GEMM ISA,
numerical gradients on tiny sizes,
stateful carry across calls, the params / grads contract, bad input, and a sequel-style Rnnlm end to end."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_DOT, f64, randn, to_device, to_host
from fastconv import ops, time_layers
from fastconv.functions import numerical_gradient
from fastconv.reference import time_layers as ref

# (N, T, D, H): one of everything, odd sizes, a batch of 1, sizes past the GEMM tiles (H = 33: 4H = 132), the
# sequel's batch and time sizes with small features
CELL_CASES = [(1, 1, 1, 1), (3, 5, 4, 6), (1, 7, 3, 2), (4, 2, 17, 33), (20, 35, 13, 9)]
CELL_IDS = ["N{}T{}D{}H{}".format(*c) for c in CELL_CASES]
GATES = {"TimeRNN": 1, "TimeLSTM": 4, "TimeGRU": 3}


def cell_params(rng, D, H, G, dtype):
    return [
        (randn(rng, (D, G * H), dtype) / np.sqrt(D)).astype(dtype),
        (randn(rng, (H, G * H), dtype) / np.sqrt(H)).astype(dtype),
        randn(rng, (G * H,), dtype),
    ]


def assert_grads(got, want, tol, what):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(to_host(g), w, **tol, err_msg=f"{what} grads[{i}]")


# ======================================================================================================
# recurrent cells over whole sequences


@pytest.mark.parametrize("name", list(GATES))
@pytest.mark.parametrize("case", CELL_CASES, ids=CELL_IDS)
def test_time_cell(rng, device, isa, dtype, name, case):
    N, T, D, H = case
    params = cell_params(rng, D, H, GATES[name], dtype)
    r = getattr(ref, name)(*f64(*params), stateful=True)
    layer = getattr(time_layers, name)(*(to_device(p, device) for p in params), stateful=True)
    for call in range(2):  # the second call starts from the state the first one left
        xs, dhs = randn(rng, (N, T, D), dtype), randn(rng, (N, T, H), dtype)
        r_hs = r.forward(f64(xs))
        hs = to_host(layer.forward(to_device(xs, device)))
        assert hs.dtype == dtype and hs.shape == (N, T, H)
        np.testing.assert_allclose(hs, r_hs, **TOL_DOT[dtype], err_msg=f"{isa} {name} {case} call {call} hs")
        r_dxs = r.backward(f64(dhs))
        dxs = to_host(layer.backward(to_device(dhs, device)))
        assert dxs.dtype == dtype and dxs.shape == xs.shape
        what = f"{isa} {name} {case} call {call}"
        np.testing.assert_allclose(dxs, r_dxs, **TOL_DOT[dtype], err_msg=f"{what} dxs")
        np.testing.assert_allclose(to_host(layer.dh), r.dh, **TOL_DOT[dtype], err_msg=f"{what} dh")
        assert_grads(layer.grads, r.grads, TOL_DOT[dtype], what)


@pytest.mark.parametrize("name", list(GATES))
def test_time_cell_same_bits_any_thread_count(rng, num_threads, name):
    """Sizes that take the kernels' parallel paths (step GEMMs, gate passes) give the same bits on 1 and 2
    threads."""
    N, T, D, H = 20, 4, 40, 256
    params = cell_params(rng, D, H, GATES[name], np.float32)
    xs, dhs = randn(rng, (N, T, D), np.float32), randn(rng, (N, T, H), np.float32)
    results = []
    for n in (1, 2):
        num_threads(n)
        layer = getattr(time_layers, name)(*params)
        results.append([layer.forward(xs), layer.backward(dhs), *(g.copy() for g in layer.grads)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(GATES))
def test_time_cell_stateful_carry(rng, device, name):
    """Stateful: two calls over halves equal one call over the whole; not stateful: every call starts from
    0."""
    N, T, D, H = 2, 6, 3, 4
    params = [to_device(p, device) for p in cell_params(rng, D, H, GATES[name], np.float64)]
    xs = to_device(rng.standard_normal((N, T, D)), device)
    whole = to_host(getattr(time_layers, name)(*params).forward(xs))
    carry = getattr(time_layers, name)(*params, stateful=True)
    halves = np.concatenate([to_host(carry.forward(xs[:, :3])), to_host(carry.forward(xs[:, 3:]))], axis=1)
    np.testing.assert_allclose(halves, whole, rtol=1e-12, atol=1e-14)
    fresh = getattr(time_layers, name)(*params)
    fresh.forward(xs[:, :3])
    second = to_host(fresh.forward(xs[:, 3:]))  # starts from zeros again, not from the first call's state
    np.testing.assert_allclose(
        second, to_host(getattr(time_layers, name)(*params).forward(xs[:, 3:])), rtol=1e-12
    )
    assert np.abs(second - whole[:, 3:]).max() > 1e-3
    carry.reset_state()
    np.testing.assert_allclose(to_host(carry.forward(xs)), whole, rtol=1e-12, atol=1e-14)


def test_time_lstm_set_state(rng, device):
    """set_state(h, c) starts a stateful TimeLSTM there (the sequel's seq2seq decoder); c=None starts c at
    0."""
    N, T, D, H = 3, 4, 5, 2
    params = cell_params(rng, D, H, 4, np.float64)
    xs, h, c = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    layer = time_layers.TimeLSTM(*(to_device(p, device) for p in params), stateful=True)
    r = ref.TimeLSTM(*params, stateful=True)
    for cc in (c, None):
        layer.set_state(to_device(h, device), None if cc is None else to_device(cc, device))
        r.set_state(h, cc)
        np.testing.assert_allclose(to_host(layer.forward(to_device(xs, device))), r.forward(xs), rtol=1e-12)
        np.testing.assert_allclose(to_host(layer.c), r.c, rtol=1e-12)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_one_step_cells(rng, device, dtype, name):
    N, D, H = 4, 5, 3
    G = GATES["Time" + name]
    params = cell_params(rng, D, H, G, dtype)
    x, h, c, dh, dc = (randn(rng, s, dtype) for s in ((N, D), (N, H), (N, H), (N, H), (N, H)))
    r = getattr(ref, name)(*f64(*params))
    layer = getattr(time_layers, name)(*(to_device(p, device) for p in params))
    states, d_states = ((h, c), (dh, dc)) if name == "LSTM" else ((h,), (dh,))
    r_out = r.forward(*(f64(a) for a in (x, *states)))
    out = layer.forward(*(to_device(a, device) for a in (x, *states)))
    r_back = r.backward(*(f64(a) for a in d_states))
    back = layer.backward(*(to_device(a, device) for a in d_states))
    if name != "LSTM":
        r_out, out = (r_out,), (out,)
    for got, want in zip((*out, *back), (*r_out, *r_back)):
        np.testing.assert_allclose(to_host(got), want, **TOL_DOT[dtype], err_msg=name)
    assert_grads(layer.grads, r.grads, TOL_DOT[dtype], name)


def test_bilstm(rng, device, dtype):
    N, T, D, H = 3, 5, 4, 6
    params = cell_params(rng, D, H, 4, dtype) + cell_params(rng, D, H, 4, dtype)
    xs, dhs = randn(rng, (N, T, D), dtype), randn(rng, (N, T, 2 * H), dtype)
    r = ref.TimeBiLSTM(*f64(*params))
    layer = time_layers.TimeBiLSTM(*(to_device(p, device) for p in params))
    np.testing.assert_allclose(
        to_host(layer.forward(to_device(xs, device))), r.forward(f64(xs)), **TOL_DOT[dtype]
    )
    np.testing.assert_allclose(
        to_host(layer.backward(to_device(dhs, device))), r.backward(f64(dhs)), **TOL_DOT[dtype]
    )
    assert_grads(layer.grads, r.grads, TOL_DOT[dtype], "TimeBiLSTM")
    assert layer.params[0] is layer.forward_lstm.params[0] and layer.grads[3] is layer.backward_lstm.grads[0]


# ======================================================================================================
# the params / grads contract


def test_params_and_grads_are_the_callers_arrays(rng, device):
    """params hold the caller's arrays, read at every call; gradients are written into the same grads
    arrays."""
    params = [to_device(p, device) for p in cell_params(rng, 3, 2, 4, np.float32)]
    layer = time_layers.TimeLSTM(*params)
    assert all(a is b for a, b in zip(layer.params, params))
    grads = list(layer.grads)
    xs = to_device(randn(rng, (2, 3, 3), np.float32), device)
    hs = layer.forward(xs)
    layer.backward(hs)
    assert all(a is b for a, b in zip(layer.grads, grads))
    assert all(np.abs(to_host(g)).sum() > 0 for g in grads)
    params[1][...] = 0  # an in-place update (the sequel's optimizers) is seen by the next call
    r = ref.TimeLSTM(*(np.asarray(to_host(p), np.float64) for p in params))
    np.testing.assert_allclose(to_host(layer.forward(xs)), r.forward(f64(to_host(xs))), **TOL[np.float32])


def test_tied_embedding_affine(rng, device, dtype):
    """BetterRnnlm's weight tying: TimeAffine(embed_W.T, b) takes a transposed view and fills its own
    grads."""
    V, D, N, T = 11, 4, 2, 3
    W, b = randn(rng, (V, D), dtype), randn(rng, (V,), dtype)
    xs, dout = randn(rng, (N, T, D), dtype), randn(rng, (N, T, V), dtype)
    Wd = to_device(W, device)
    layer = time_layers.TimeAffine(Wd.T, to_device(b, device))
    r = ref.TimeAffine(f64(W).T, f64(b))
    np.testing.assert_allclose(
        to_host(layer.forward(to_device(xs, device))), r.forward(f64(xs)), **TOL_DOT[dtype]
    )
    np.testing.assert_allclose(
        to_host(layer.backward(to_device(dout, device))), r.backward(f64(dout)), **TOL_DOT[dtype]
    )
    assert_grads(layer.grads, r.grads, TOL_DOT[dtype], "TimeAffine")
    assert layer.params[0].base is Wd


# ======================================================================================================
# embedding, losses, dropout


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (20, 35)], ids=["1", "7", "3x5", "20x35"])
def test_embedding(rng, device, dtype, shape):
    V, D = 13, 6
    W = randn(rng, (V, D), dtype)
    idx = rng.integers(0, V, size=shape)
    idx.flat[0] = idx.flat[-1]  # a repeated id accumulates
    dout = randn(rng, shape + (D,), dtype)
    for cls in (time_layers.Embedding, time_layers.TimeEmbedding):
        layer, r = cls(to_device(W, device)), ref.Embedding(f64(W))
        out = to_host(layer.forward(to_device(idx, device)))
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, W[idx])
        grad = layer.grads[0]
        assert layer.backward(to_device(dout, device)) is None
        r.forward(idx)
        r.backward(f64(dout))
        assert layer.grads[0] is grad
        np.testing.assert_allclose(to_host(grad), r.grads[0], **TOL[dtype], err_msg=f"{cls.__name__} {shape}")


def test_embedding_grads_not_contiguous(rng):
    """A grads array that is not C-contiguous (zeros_like of a transposed table) is filled by copy."""
    W = rng.standard_normal((4, 9)).T  # (9, 4), Fortran-ordered
    layer = time_layers.Embedding(W)
    idx = np.array([1, 8, 1])
    layer.forward(idx)
    dout = rng.standard_normal((3, 4))
    layer.backward(dout)
    want = np.zeros((9, 4))
    np.add.at(want, idx, dout)
    np.testing.assert_allclose(layer.grads[0], want, rtol=1e-15)


@pytest.mark.parametrize("targets", ["labels", "ignored", "onehot"])
@pytest.mark.parametrize("shape", [(1, 1, 2), (3, 5, 10), (2, 7, 1000)], ids=["1x1x2", "3x5x10", "2x7x1000"])
def test_time_softmax_with_loss(rng, device, dtype, shape, targets):
    N, T, V = shape
    xs = (3 * randn(rng, shape, dtype)).astype(dtype)
    ts = rng.integers(0, V, size=(N, T))
    if targets == "ignored":
        ts.flat[::2] = -1
        ts.flat[-1] = V - 1
    elif targets == "onehot":
        ts = np.eye(V, dtype=np.int32)[ts]
    layer, r = time_layers.TimeSoftmaxWithLoss(), ref.TimeSoftmaxWithLoss()
    loss = layer.forward(to_device(xs, device), to_device(ts, device))
    assert isinstance(loss, dtype)
    np.testing.assert_allclose(loss, r.forward(f64(xs), ts), **TOL[dtype])
    dx = to_host(layer.backward(0.5))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, r.backward(0.5), **TOL[dtype])


def test_time_softmax_with_loss_all_ignored():
    layer = time_layers.TimeSoftmaxWithLoss()
    assert np.isnan(layer.forward(np.zeros((1, 2, 3)), np.full((1, 2), -1)))
    np.testing.assert_array_equal(layer.backward(), np.zeros((1, 2, 3)))


def test_time_sigmoid_with_loss(rng, device, dtype):
    xs, ts = (3 * randn(rng, (4, 6), dtype)).astype(dtype), rng.integers(0, 2, size=(4, 6))
    layer, r = time_layers.TimeSigmoidWithLoss(), ref.TimeSigmoidWithLoss()
    np.testing.assert_allclose(
        layer.forward(to_device(xs, device), to_device(ts, device)), r.forward(f64(xs), ts), **TOL[dtype]
    )
    np.testing.assert_allclose(to_host(layer.backward(2.0)), r.backward(2.0), **TOL[dtype])


def test_time_dropout(rng, device):
    xs = to_device(rng.standard_normal((20, 35, 16)).astype(np.float32), device)
    layer = time_layers.TimeDropout(0.25)
    np.random.seed(3)
    out = to_host(layer.forward(xs))
    mask = to_host(layer.mask)
    assert out.dtype == np.float32 and set(np.unique(mask)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (mask == 0).mean() < 0.3
    np.testing.assert_allclose(out, to_host(xs) * mask, rtol=1e-6)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(to_host(layer.backward(to_device(dout, device))), dout * mask, rtol=1e-6)
    np.random.seed(3)
    np.testing.assert_array_equal(
        to_host(time_layers.TimeDropout(0.25).forward(xs)), out
    )  # np.random.seed repeats
    layer.train_flg = False
    assert layer.forward(xs) is xs


# ======================================================================================================
# numerical gradients (float64, tiny sizes)


def loss_of(layer, xs, w):
    return float(np.sum(layer.forward(xs) * w))


@pytest.mark.parametrize("name", list(GATES))
def test_time_cell_numerical_gradient(rng, name):
    N, T, D, H = 2, 3, 3, 2
    params = cell_params(rng, D, H, GATES[name], np.float64)
    xs, w = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    for impl in (time_layers, ref):
        layer = getattr(impl, name)(*params)
        layer.forward(xs)
        dxs = layer.backward(w)
        np.testing.assert_allclose(
            dxs, numerical_gradient(lambda _, f=layer: loss_of(f, xs, w), xs), **GRAD_TOL
        )
        for p, g in zip(layer.params, layer.grads):
            np.testing.assert_allclose(
                g,
                numerical_gradient(lambda _, f=layer: loss_of(f, xs, w), p),
                **GRAD_TOL,
                err_msg=f"{impl.__name__} {name}",
            )


def test_losses_numerical_gradient(rng):
    xs = rng.standard_normal((2, 3, 4))
    ts = np.array([[0, -1, 3], [2, 2, 1]])
    for impl in (time_layers, ref):
        layer = impl.TimeSoftmaxWithLoss()
        layer.forward(xs, ts)
        np.testing.assert_allclose(
            layer.backward(), numerical_gradient(lambda _, f=layer: f.forward(xs, ts), xs), **GRAD_TOL
        )
    xs2, ts2 = rng.standard_normal((3, 4)), rng.integers(0, 2, size=(3, 4))
    layer = time_layers.TimeSigmoidWithLoss()
    layer.forward(xs2, ts2)
    np.testing.assert_allclose(
        layer.backward(), numerical_gradient(lambda _: layer.forward(xs2, ts2), xs2), **GRAD_TOL
    )


# ======================================================================================================
# attention (the sequel's ch08)

# (N, S, L, H): encoder steps S and decoder steps L differ; batch 1; sizes past the GEMM tiles
ATT_CASES = [(1, 1, 1, 1), (3, 5, 4, 6), (2, 7, 1, 3), (4, 29, 11, 33)]
ATT_IDS = ["N{}S{}L{}H{}".format(*c) for c in ATT_CASES]


@pytest.mark.parametrize("case", ATT_CASES, ids=ATT_IDS)
def test_attention_layers(rng, device, isa, dtype, case):
    N, S, L, H = case
    enc, dec, dout = (randn(rng, s, dtype) for s in ((N, S, H), (N, L, H), (N, L, H)))
    layer, r = time_layers.TimeAttention(), ref.TimeAttention()
    out = to_host(layer.forward(to_device(enc, device), to_device(dec, device)))
    assert out.dtype == dtype and out.shape == (N, L, H)
    np.testing.assert_allclose(
        out, r.forward(f64(enc), f64(dec)), **TOL_DOT[dtype], err_msg=f"{isa} {case} out"
    )
    np.testing.assert_allclose(
        np.array([to_host(w) for w in layer.attention_weights]), np.array(r.attention_weights), **TOL[dtype]
    )
    for got, want, name in zip(
        layer.backward(to_device(dout, device)), r.backward(f64(dout)), ("enc", "dec")
    ):
        np.testing.assert_allclose(to_host(got), want, **TOL_DOT[dtype], err_msg=f"{isa} {case} dhs_{name}")
    # one decoder step: Attention, and its two parts
    h, dc = dec[:, 0, :], dout[:, 0, :]
    for cls in ("Attention", "AttentionWeight"):
        layer, r = getattr(time_layers, cls)(), getattr(ref, cls)()
        got = to_host(layer.forward(to_device(enc, device), to_device(h, device)))
        np.testing.assert_allclose(got, r.forward(f64(enc), f64(h)), **TOL_DOT[dtype], err_msg=cls)
        d = dc if cls == "Attention" else randn(rng, got.shape, dtype)
        for g, w in zip(layer.backward(to_device(d, device)), r.backward(f64(d))):
            np.testing.assert_allclose(to_host(g), w, **TOL_DOT[dtype], err_msg=f"{cls} backward")
    a = np.abs(randn(rng, (N, S), dtype))
    layer, r = time_layers.WeightSum(), ref.WeightSum()
    np.testing.assert_allclose(
        to_host(layer.forward(to_device(enc, device), to_device(a, device))),
        r.forward(f64(enc), f64(a)),
        **TOL_DOT[dtype],
    )
    for g, w in zip(layer.backward(to_device(dc, device)), r.backward(f64(dc))):
        np.testing.assert_allclose(to_host(g), w, **TOL_DOT[dtype], err_msg="WeightSum backward")


def test_attention_numerical_gradient(rng):
    enc, dec, w = (
        rng.standard_normal((2, 4, 3)),
        rng.standard_normal((2, 3, 3)),
        rng.standard_normal((2, 3, 3)),
    )
    for impl in (time_layers, ref):
        layer = impl.TimeAttention()

        def loss(_, f=layer):
            return float(np.sum(f.forward(enc, dec) * w))

        layer.forward(enc, dec)
        d_enc, d_dec = layer.backward(w)
        np.testing.assert_allclose(d_enc, numerical_gradient(loss, enc), **GRAD_TOL, err_msg=impl.__name__)
        np.testing.assert_allclose(d_dec, numerical_gradient(loss, dec), **GRAD_TOL, err_msg=impl.__name__)


# ======================================================================================================
# a sequel-style Rnnlm (its ch06 model, written as the sequel writes it) on either module


class Rnnlm:
    def __init__(self, tl, V, D, H, rng, dtype):
        rn = rng.standard_normal
        embed_W = (rn((V, D)) / 100).astype(dtype)
        lstm_Wx = (rn((D, 4 * H)) / np.sqrt(D)).astype(dtype)
        lstm_Wh = (rn((H, 4 * H)) / np.sqrt(H)).astype(dtype)
        lstm_b = np.zeros(4 * H).astype(dtype)
        affine_W = (rn((H, V)) / np.sqrt(H)).astype(dtype)
        affine_b = np.zeros(V).astype(dtype)
        self.layers = [
            tl.TimeEmbedding(embed_W),
            tl.TimeLSTM(lstm_Wx, lstm_Wh, lstm_b, stateful=True),
            tl.TimeAffine(affine_W, affine_b),
        ]
        self.loss_layer = tl.TimeSoftmaxWithLoss()
        self.params, self.grads = [], []
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads

    def forward(self, xs, ts):
        for layer in self.layers:
            xs = layer.forward(xs)
        return self.loss_layer.forward(xs, ts)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


def test_rnnlm_loss_and_gradients(dtype):
    V, D, H, N, T = 50, 8, 12, 4, 7
    fast = Rnnlm(time_layers, V, D, H, np.random.default_rng(5), dtype)
    oracle = Rnnlm(ref, V, D, H, np.random.default_rng(5), np.float64)
    data = np.random.default_rng(6).integers(0, V, size=(3, N, T + 1))
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    for batch in data:  # three truncated-BPTT batches: the LSTM state carries over
        xs, ts = batch[:, :-1], batch[:, 1:]
        np.testing.assert_allclose(fast.forward(xs, ts), oracle.forward(xs, ts), **tol)
        assert fast.backward() is None and oracle.backward() is None
        for i, (g, r) in enumerate(zip(fast.grads, oracle.grads)):
            assert g.dtype == dtype
            np.testing.assert_allclose(g / np.abs(r).max(), r / np.abs(r).max(), **tol, err_msg=f"grads[{i}]")


def test_star_import_hands_on_the_sequels_names():
    names = {n: getattr(time_layers, n) for n in time_layers.__all__}  # what `import *` binds
    for n in (
        "np",
        "GPU",
        "softmax",
        "sigmoid",
        "cross_entropy_error",
        "Affine",
        "MatMul",
        "SoftmaxWithLoss",
        "Sigmoid",
        "SigmoidWithLoss",
        "Dropout",
        "Embedding",
        "TimeRNN",
        "TimeLSTM",
        "TimeGRU",
        "TimeEmbedding",
        "TimeAffine",
        "TimeSoftmaxWithLoss",
        "TimeSigmoidWithLoss",
        "TimeDropout",
        "TimeBiLSTM",
        "RNN",
        "LSTM",
        "GRU",
        "WeightSum",
        "AttentionWeight",
        "Attention",
        "TimeAttention",
    ):
        assert n in names, n
    assert names["np"] is np and names["GPU"] is False


# ======================================================================================================
# bad input


def test_bad_input_names_the_argument(rng):
    params = cell_params(rng, 3, 2, 4, np.float32)
    xs = randn(rng, (2, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"xs: expected a 3-D array \(N, T, D\), got shape \(4, 3\)"):
        time_layers.TimeLSTM(*params).forward(xs[0])
    with pytest.raises(
        ValueError, match=r"Wx: shape \(3, 8\), expected \(3, 6\) \(xs has D = 3 features; GRU"
    ):
        time_layers.TimeGRU(params[0], params[1][:, :6], params[2][:6]).forward(xs)
    with pytest.raises(ValueError, match=r"Wx: shape \(5, 8\), expected \(3, 8\) \(xs has D = 3"):
        time_layers.TimeLSTM(randn(rng, (5, 8), np.float32), *params[1:]).forward(xs)
    with pytest.raises(ValueError, match=r"b: shape \(7,\), expected \(8,\)"):
        time_layers.TimeLSTM(*params[:2], params[2][:7]).forward(xs)
    with pytest.raises(TypeError, match=r"xs: dtype int64 is not supported"):
        time_layers.TimeLSTM(*params).forward(np.zeros((2, 4, 3), dtype=np.int64))
    stateful = time_layers.TimeLSTM(*params, stateful=True)
    stateful.forward(xs)
    with pytest.raises(ValueError, match=r"h0: shape \(2, 2\), expected \(1, 2\)"):
        stateful.forward(xs[:1])  # the carried state has another batch size
    with pytest.raises(ValueError, match=r"idx: id 10 at index 1 is out of range \[0, 10\)"):
        time_layers.TimeEmbedding(np.zeros((10, 3), np.float32)).forward(np.array([[0, 10]]))
    with pytest.raises(TypeError, match=r"idx: expected integer ids, got dtype float64"):
        time_layers.TimeEmbedding(np.zeros((10, 3), np.float32)).forward(np.array([[0.0, 1.0]]))
    loss = time_layers.TimeSoftmaxWithLoss()
    with pytest.raises(ValueError, match=r"ts: label 5 at index 2 is out of range \[0, 5\)"):
        loss.forward(np.zeros((1, 3, 5)), np.array([[0, 1, 5]]))
    with pytest.raises(ValueError, match=r"ts: shape \(1, 2\), expected \(1, 3\)"):
        loss.forward(np.zeros((1, 3, 5)), np.array([[0, 1]]))
    with pytest.raises(TypeError, match=r"ts: expected integer labels"):
        loss.forward(np.zeros((1, 3, 5)), np.zeros((1, 3)))
    with pytest.raises(
        ValueError, match=r"hs_dec: shape \(2, 3, 5\), expected \(2, 3, 4\) \(hs_enc has shape"
    ):
        time_layers.TimeAttention().forward(np.zeros((2, 6, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"h: shape \(3, 4\), expected \(2, 4\)"):
        time_layers.Attention().forward(np.zeros((2, 6, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"dc_last: shape \(1, 2\), expected \(2, 2\)"):
        ops.lstm_backward(
            xs,
            *params[:2],
            *(np.zeros(s, np.float32) for s in ((2, 2), (2, 2), (2, 4, 2), (2, 4, 2), (2, 4, 8), (2, 4, 2))),
            dc_last=np.zeros((1, 2), np.float32),
        )


def test_sequel_common_layers(rng):
    """The common/layers.py names the sequel hands on: params / grads lists, gradients in place."""
    x, W, b, dout = (rng.standard_normal(s) for s in ((4, 3), (3, 5), (5,), (4, 5)))
    for cls, args, out in ((time_layers.Affine, (W, b), x @ W + b), (time_layers.MatMul, (W,), x @ W)):
        layer = cls(*args)
        grads = list(layer.grads)
        np.testing.assert_allclose(layer.forward(x), out, rtol=1e-12)
        np.testing.assert_allclose(layer.backward(dout), dout @ W.T, rtol=1e-12)
        assert layer.grads[0] is grads[0]
        np.testing.assert_allclose(layer.grads[0], x.T @ dout, rtol=1e-12)
    for name in ("Sigmoid", "SoftmaxWithLoss", "SigmoidWithLoss", "Dropout", "TimeDropout"):
        layer = getattr(time_layers, name)()
        assert layer.params == [] and layer.grads == []
    s = time_layers.Sigmoid()
    np.testing.assert_allclose(s.forward(x), 1 / (1 + np.exp(-x)), rtol=1e-12)
    loss = time_layers.SoftmaxWithLoss()
    t = np.array([0, 4, 2, 1])
    y = np.exp(dout) / np.exp(dout).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.forward(dout, t), -np.mean(np.log(y[np.arange(4), t] + 1e-7)), rtol=1e-12)
