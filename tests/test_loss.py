"""Softmax and SoftmaxWithLoss (labels, one-hot and probability targets) against fastconv.reference."""

import warnings

import numpy as np
import pytest
from conftest import TOL, f64, randn, to_device, to_host
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
