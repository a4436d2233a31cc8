"""Softmax and SoftmaxWithLoss (labels, one-hot and probability targets) against fastconv.reference."""

import warnings

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_F64_TIGHT, f64, randn, to_device, to_host
from fastconv import functions, layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

SHAPES = [(1, 1), (1, 10), (8, 10), (5, 3), (33, 17), (3, 1000)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def targets(rng, kind, N, K, dtype):
    labels = rng.integers(0, K, size=N)
    if kind == "labels":
        return labels
    if kind == "onehot":
        return np.eye(K, dtype=dtype)[labels]
    p = rng.random((N, K)).astype(dtype)
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_softmax(rng, device, dtype, shape):
    x = (3 * randn(rng, shape, dtype)).astype(dtype)
    ref = ref_functions.softmax(f64(x))
    xd = to_device(x, device)
    for f in (ops.softmax, functions.softmax):
        y = to_host(f(xd))
        assert y.dtype == dtype and y.shape == shape
        np.testing.assert_allclose(y, ref, **TOL[dtype], err_msg=f"{f.__module__} {shape}")
    y1 = to_host(ops.softmax(xd[0]))  # 1-D
    assert y1.shape == (shape[1],)
    np.testing.assert_allclose(y1, ref[0], **TOL[dtype])


def test_softmax_large_values(device, dtype):
    x = np.array(
        [[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]], dtype=dtype
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = to_host(ops.softmax(to_device(x, device)))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, ref_functions.softmax(f64(x)), **TOL[dtype])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, **TOL[dtype])
    np.testing.assert_allclose(y[3], [1 / 3] * 3, **TOL[dtype])


@pytest.mark.parametrize("kind", ["labels", "onehot", "probs"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_softmax_with_loss(rng, device, dtype, shape, kind):
    N, K = shape
    x = (3 * randn(rng, shape, dtype)).astype(dtype)
    t = targets(rng, kind, N, K, dtype)
    ref = ref_layers.SoftmaxWithLoss()
    r_loss = ref.forward(f64(x), t)
    layer = layers.SoftmaxWithLoss()
    loss = layer.forward(to_device(x, device), to_device(t, device))
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, r_loss, **TOL[dtype], err_msg=f"{kind} {shape}")
    np.testing.assert_allclose(to_host(layer.y), ref.y, **TOL[dtype])
    for dout in (1, 2.5):
        dx = to_host(layer.backward(dout))
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_allclose(
            dx, ref.backward(dout), **TOL[dtype], err_msg=f"{kind} {shape} dout={dout}"
        )


@pytest.mark.parametrize("kind", ["labels", "onehot"])
def test_softmax_with_loss_1d(rng, device, dtype, kind):
    """A 1-D score vector is a batch of one; its label may be a scalar."""
    x = randn(rng, (10,), dtype)
    t = np.int64(3) if kind == "labels" else np.eye(10, dtype=dtype)[3]
    ref, layer = ref_layers.SoftmaxWithLoss(), layers.SoftmaxWithLoss()
    loss = layer.forward(to_device(x, device), to_device(t, device))
    np.testing.assert_allclose(loss, ref.forward(f64(x), t), **TOL[dtype])
    dx = to_host(layer.backward())
    assert dx.shape == (10,)
    np.testing.assert_allclose(dx, ref.backward(), **TOL[dtype])


def test_loss_large_scores(device, dtype):
    """Very confident wrong predictions: the loss is -log(1e-7)-ish, finite, no overflow warnings."""
    x = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 5000.0]], dtype=dtype)
    t = np.array([1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, _ = ops.softmax_cross_entropy(to_device(x, device), to_device(t, device))
    assert np.isfinite(loss)
    np.testing.assert_allclose(
        loss, ref_functions.cross_entropy_error(ref_functions.softmax(f64(x)), t), rtol=1e-6
    )


def test_label_dtypes(rng, device):
    """Any integer label dtype (int8 .. uint64) gives the same result as int64."""
    x = to_device(rng.standard_normal((6, 5)), device)
    t = rng.integers(0, 5, size=6)
    want = ops.softmax_cross_entropy(x, to_device(t, device))[0]
    for dt in (np.int8, np.uint8, np.int16, np.int32, np.uint32, np.uint64):
        td = to_device(t.astype(dt), device)
        assert ops.softmax_cross_entropy(x, td)[0] == want, dt
        np.testing.assert_array_equal(
            to_host(ops.softmax_cross_entropy_backward(ops.softmax(x), td)),
            to_host(ops.softmax_cross_entropy_backward(ops.softmax(x), to_device(t, device))),
        )


def test_dense_targets_float64_with_float32_scores(rng, device):
    """float64 one-hot targets do not promote a float32 network's gradient (they are data)."""
    x = randn(rng, (4, 3), np.float32)
    t = np.eye(3)[[0, 2, 1, 1]]
    layer = layers.SoftmaxWithLoss()
    layer.forward(to_device(x, device), to_device(t, device))
    assert layer.backward().dtype == np.float32


def test_cross_entropy_error_and_softmax_loss(rng, device, dtype):
    x = randn(rng, (7, 4), dtype)
    t = rng.integers(0, 4, size=7)
    xd, td, onehot = to_device(x, device), to_device(t, device), to_device(np.eye(4)[t], device)
    y = functions.softmax(xd)
    manual = -np.mean(np.log(f64(to_host(y))[np.arange(7), t] + 1e-7))
    np.testing.assert_allclose(to_host(functions.cross_entropy_error(y, td)), manual, **TOL[dtype])
    np.testing.assert_allclose(to_host(functions.cross_entropy_error(y, onehot)), manual, **TOL[dtype])
    np.testing.assert_allclose(functions.softmax_loss(xd, td), manual, **TOL[dtype])
    layer = layers.SoftmaxWithLoss()
    np.testing.assert_allclose(layer.forward(xd, td), manual, **TOL[dtype])
    assert functions.mean_squared_error(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 2.5


def test_integer_one_hot_targets(rng, device, dtype):
    """Integer one-hot targets of x's shape (np.eye(K, dtype=int)[labels]) are one-hot targets: the book's
    SoftmaxWithLoss and fastconv.reference accept them (t.size == y.size), so fastconv must too."""
    x = randn(rng, (4, 5), dtype)
    t = np.eye(5, dtype=np.int64)[[0, 3, 1, 4]]
    ref, layer = ref_layers.SoftmaxWithLoss(), layers.SoftmaxWithLoss()
    loss = layer.forward(to_device(x, device), to_device(t, device))
    np.testing.assert_allclose(loss, ref.forward(f64(x), t), **TOL[dtype])
    np.testing.assert_allclose(to_host(layer.backward()), ref.backward(), **TOL[dtype])


# ======================================================================================================
# SigmoidWithLoss and MeanSquaredError (issue 16): targets of the shape of the scores


ELEMENTWISE_SHAPES = [(1, 1), (8, 1), (5, 3), (4, 2, 3, 3), (7,), (300, 70)]
ELEMENTWISE_IDS = ["x".join(map(str, s)) for s in ELEMENTWISE_SHAPES]


def _tol(dtype):
    return TOL_F64_TIGHT if dtype == np.float64 else TOL[dtype]


@pytest.mark.parametrize("soft", [False, True], ids=["labels01", "soft"])
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=ELEMENTWISE_IDS)
def test_sigmoid_with_loss(rng, device, dtype, shape, soft):
    x = (3 * randn(rng, shape, dtype)).astype(dtype)
    t = rng.random(shape) if soft else (rng.random(shape) > 0.5)
    t = t.astype(dtype)
    ref, layer = ref_layers.SigmoidWithLoss(), layers.SigmoidWithLoss()
    r_loss = ref.forward(f64(x), f64(t))
    r_dx = ref.backward(2.5)
    loss = layer.forward(to_device(x, device), to_device(t, device))
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, r_loss, **_tol(dtype), err_msg=f"{shape}")
    np.testing.assert_allclose(to_host(layer.y), ref.y, **_tol(dtype))
    dx = to_host(layer.backward(2.5))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, r_dx, **_tol(dtype), err_msg=f"{shape}")


def test_sigmoid_with_loss_matches_the_definition_and_torch(rng):
    """The stable form equals -t*log(y) - (1-t)*log(1-y) where that can be evaluated, and torch's
    BCEWithLogitsLoss (mean reduction) where torch is importable."""
    x = rng.standard_normal((6, 4)) * 3
    t = (rng.random((6, 4)) > 0.4).astype(np.float64)
    y = 1 / (1 + np.exp(-x))
    direct = np.mean(-t * np.log(y) - (1 - t) * np.log(1 - y))
    loss = layers.SigmoidWithLoss().forward(x, t)
    np.testing.assert_allclose(loss, direct, rtol=1e-12)
    try:
        import torch
    except ImportError:
        return
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    want = bce(torch.from_numpy(x), torch.from_numpy(t)).item()
    np.testing.assert_allclose(loss, want, rtol=1e-12)


def test_sigmoid_with_loss_extreme_logits(device, dtype):
    """Logits of +-1000 give finite losses (the naive log(sigmoid) would be log(0)) and no warnings."""
    x = np.array([[-1000.0], [1000.0], [-1000.0], [1000.0], [0.0]], dtype=dtype)
    t = np.array([[0.0], [1.0], [1.0], [0.0], [1.0]], dtype=dtype)
    layer = layers.SigmoidWithLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = layer.forward(to_device(x, device), to_device(t, device))
        dx = to_host(layer.backward())
    # two confident right answers cost 0, two confident wrong ones 1000 each, x = 0 costs log 2
    np.testing.assert_allclose(loss, (2000 + np.log(2)) / 5, rtol=1e-6)
    np.testing.assert_allclose(dx.ravel(), np.array([0, 0, -1, 1, -0.5]) / 5, atol=1e-7)


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=ELEMENTWISE_IDS)
def test_mean_squared_error_layer(rng, device, dtype, shape):
    y = randn(rng, shape, dtype)
    t = randn(rng, shape, dtype)
    ref, layer = ref_layers.MeanSquaredError(), layers.MeanSquaredError()
    r_loss = ref.forward(f64(y), f64(t))
    loss = layer.forward(to_device(y, device), to_device(t, device))
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, r_loss, **_tol(dtype))
    np.testing.assert_allclose(loss, np.mean((f64(y) - f64(t)) ** 2), **_tol(dtype))  # Keras' mse
    dx = to_host(layer.backward(0.5))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.backward(0.5), **_tol(dtype))


def test_elementwise_losses_integer_targets_and_torch(rng):
    """0/1 integer or bool targets are accepted (as float); MSE equals torch's MSELoss where torch exists."""
    x = rng.standard_normal((5, 2))
    t = rng.integers(0, 2, size=(5, 2))
    assert layers.SigmoidWithLoss().forward(x, t) == layers.SigmoidWithLoss().forward(x, t.astype(float))
    mse = layers.MeanSquaredError()
    assert mse.forward(x, t.astype(bool)) == mse.forward(x, t * 1.0)
    try:
        import torch
    except ImportError:
        return
    want = torch.nn.functional.mse_loss(torch.from_numpy(x), torch.from_numpy(t * 1.0)).item()
    np.testing.assert_allclose(layers.MeanSquaredError().forward(x, t), want, rtol=1e-12)


@pytest.mark.parametrize("mod", ["fastconv", "reference"])
def test_elementwise_losses_numerical_gradient(rng, mod):
    m = layers if mod == "fastconv" else ref_layers
    x = rng.standard_normal((4, 3))
    t = rng.random((4, 3))
    for layer in (m.SigmoidWithLoss(), m.MeanSquaredError()):
        def loss(_, layer=layer):
            return float(layer.forward(x, t))

        loss(None)
        dx = layer.backward(1)
        np.testing.assert_allclose(dx, ref_functions.numerical_gradient(loss, x), **GRAD_TOL,
                                   err_msg=type(layer).__name__)


def test_elementwise_losses_same_bits_any_thread_count(rng, num_threads):
    x = randn(rng, (300, 500), np.float32)
    t = (rng.random((300, 500)) > 0.5).astype(np.float32)
    got = []
    for n in (1, 2, 3):
        num_threads(n)
        got.append((ops.sigmoid_cross_entropy(x, t)[0], ops.mean_squared_error(x, t)))
    assert got[0] == got[1] == got[2]


@pytest.mark.parametrize(
    "f, exc, match",
    [
        (lambda: layers.SigmoidWithLoss().forward(np.zeros((3, 1)), np.zeros(3)), ValueError,
         r"^t: shape \(3,\), expected \(3, 1\) \(the shape of x\)"),
        (lambda: layers.SigmoidWithLoss().forward(np.zeros((3, 1), int), np.zeros((3, 1))), TypeError,
         r"^x: dtype int64"),
        (lambda: layers.SigmoidWithLoss().forward(np.zeros((0, 1)), np.zeros((0, 1))), ValueError,
         r"^x: empty array"),
        (lambda: layers.SigmoidWithLoss().forward(np.zeros(2), np.array(["a", "b"])), TypeError,
         r"^t: dtype <U1 is not supported"),
        (lambda: layers.MeanSquaredError().forward(np.zeros((2, 3)), np.zeros((3, 2))), ValueError,
         r"^t: shape \(3, 2\), expected \(2, 3\) \(the shape of y\)"),
        (lambda: layers.MeanSquaredError().forward(np.zeros((2, 3)), None), TypeError,
         r"^t: expected an array, got None"),
        (lambda: ops.mean_squared_error_backward(np.zeros(2), np.zeros(2), "1"), TypeError,
         r"^dout: expected a real number"),
    ],
)
def test_elementwise_losses_bad_input(f, exc, match):
    with pytest.raises(exc, match=match):
        f()


@pytest.mark.parametrize("make, target", [
    (layers.SoftmaxWithLoss, lambda rng, x: rng.integers(0, x.shape[1], x.shape[0])),
    (layers.SigmoidWithLoss, lambda rng, x: (rng.random(x.shape) > 0.5).astype(x.dtype)),
    (layers.MeanSquaredError, lambda rng, x: rng.standard_normal(x.shape).astype(x.dtype)),
], ids=["softmax", "sigmoid", "mse"])
def test_loss_scale_multiplies_the_gradient(rng, make, target):
    """`loss_scale` (set by mixed-precision training) scales the gradient handed back, exactly for a power of
    two, and leaves the loss alone; the default 1 is the unscaled gradient bit for bit."""
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = target(rng, x)
    layer = make()
    loss = layer.forward(x, t)
    plain = layer.backward()
    layer.loss_scale = 1024.0
    assert layer.forward(x, t) == loss
    np.testing.assert_array_equal(layer.backward(), plain * np.float32(1024.0))
    np.testing.assert_array_equal(layer.backward(0.5), plain * np.float32(512.0))
    layer.loss_scale = 1.0
    np.testing.assert_array_equal(layer.backward(), plain)
