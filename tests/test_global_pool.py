"""GlobalAvgPooling / GlobalMaxPooling ((N, C, H, W) -> (N, C)) against fastconv.reference: forward, backward,
ties and NaN as np.argmax, numerical gradients, thread-count independence and bad input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_F64_TIGHT, f64, randn, to_device, to_host
from fastconv import _cpu, layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (1, 7, 1, 9), (8, 16, 7, 7), (3, 2, 28, 28), (64, 64, 8, 8)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def tol(dtype):
    return TOL_F64_TIGHT if dtype == np.float64 else TOL[dtype]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_global_avg_pooling(rng, device, dtype, shape):
    x = (randn(rng, shape, dtype) + 2).astype(dtype)
    dout = randn(rng, shape[:2], dtype)
    ref, layer = ref_layers.GlobalAvgPooling(), layers.GlobalAvgPooling()
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape[:2]
    np.testing.assert_allclose(out, ref.forward(f64(x)), **tol(dtype), err_msg=f"{shape}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.backward(f64(dout)), **tol(dtype), err_msg=f"{shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_global_max_pooling(rng, device, dtype, shape):
    x = randn(rng, shape, dtype)
    dout = randn(rng, shape[:2], dtype)
    ref, layer = ref_layers.GlobalMaxPooling(), layers.GlobalMaxPooling()
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape[:2]
    np.testing.assert_array_equal(out, ref.forward(x))  # a max is exact
    np.testing.assert_array_equal(to_host(layer.arg_max), ref.arg_max)
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_array_equal(dx, ref.backward(dout))


def test_global_max_ties_and_nan_like_argmax(device, dtype):
    x = np.zeros((1, 4, 2, 3), dtype=dtype)
    x[0, 0] = [[1, 5, 5], [0, 5, 2]]  # ties: the first wins
    x[0, 1] = [[1, np.nan, 9], [np.nan, 0, 0]]  # the first NaN wins
    x[0, 2] = [[np.nan, 1, 2], [3, 4, 5]]
    x[0, 3] = -np.inf
    out, am = (to_host(a) for a in ops.global_maxpool_forward(to_device(x, device)))
    flat = x.reshape(1, 4, -1)
    np.testing.assert_array_equal(am, np.argmax(flat, axis=2))
    np.testing.assert_array_equal(out, np.max(flat, axis=2))  # NaN compares equal in assert_array_equal
    assert am.tolist() == [[1, 1, 0, 0]]


@pytest.mark.parametrize("mod", ["fastconv", "reference"])
def test_global_pooling_numerical_gradient(rng, mod):
    m = layers if mod == "fastconv" else ref_layers
    x = rng.standard_normal((2, 3, 3, 4))
    w = rng.standard_normal((2, 3))
    for layer in (m.GlobalAvgPooling(), m.GlobalMaxPooling()):
        def loss(_, layer=layer):
            return float(np.sum(w * layer.forward(x)))

        loss(None)
        dx = layer.backward(w)
        np.testing.assert_allclose(dx, ref_functions.numerical_gradient(loss, x), **GRAD_TOL,
                                   err_msg=type(layer).__name__)


def test_global_pooling_same_bits_any_thread_count(rng, num_threads):
    x = randn(rng, (32, 64, 14, 14), np.float32)
    dout = randn(rng, (32, 64), np.float32)
    got = []
    for n in (1, 2, 3):
        num_threads(n)
        out, am = ops.global_maxpool_forward(x)
        got.append((ops.global_avgpool_forward(x), ops.global_avgpool_backward(dout, x.shape), out, am,
                    ops.global_maxpool_backward(dout, am, x.shape)))
    for r in got[1:]:
        for a, b in zip(got[0], r):
            np.testing.assert_array_equal(a, b)


def test_global_pooling_non_contiguous(rng, dtype):
    x = randn(rng, (2, 5, 6, 3), dtype).transpose(0, 3, 1, 2)  # channels-last memory
    np.testing.assert_allclose(layers.GlobalAvgPooling().forward(x), f64(x).mean(axis=(2, 3)), **TOL[dtype])
    np.testing.assert_array_equal(layers.GlobalMaxPooling().forward(x), x.max(axis=(2, 3)))


@pytest.mark.parametrize(
    "f, exc, match",
    [
        (lambda: layers.GlobalAvgPooling().forward(np.zeros((2, 3))), ValueError,
         r"^x: expected a 4-D array \(N, C, H, W\), got shape \(2, 3\)"),
        (lambda: layers.GlobalMaxPooling().forward(np.zeros((2, 3, 0, 4))), ValueError, r"^x: empty array"),
        (lambda: layers.GlobalMaxPooling().forward(np.zeros((2, 3, 2, 2), np.int32)), TypeError,
         r"^x: dtype int32"),
        (lambda: ops.global_avgpool_backward(np.zeros((2, 4)), (2, 3, 5, 5)), ValueError,
         r"^dout: shape \(2, 4\), expected \(2, 3\)"),
        (lambda: ops.global_avgpool_backward(np.zeros((2, 3)), (2, 3, 5)), ValueError, r"^x_shape: expected"),
        (lambda: ops.global_maxpool_backward(np.zeros((2, 3)), np.zeros((2, 3)), (2, 3, 5, 5)), TypeError,
         r"^argmax: expected an integer array"),
        (lambda: ops.global_maxpool_backward(np.zeros((2, 3)), np.zeros((3, 2), int), (2, 3, 5, 5)),
         ValueError, r"^argmax: shape \(3, 2\)"),
        (lambda: ops.global_maxpool_backward(np.zeros((2, 3)), np.full((2, 3), 25), (2, 3, 5, 5)), ValueError,
         r"^argmax: value 25 at flat index 0 is out of range \[0, 25\)"),
        (lambda: ops.global_maxpool_backward(np.zeros((2, 3)), np.full((2, 3), -1), (2, 3, 5, 5)), ValueError,
         r"^argmax: value -1"),
        (lambda: ops.global_maxpool_backward(np.zeros((2, 3)), np.full((2, 3), 2**64 - 1, np.uint64),
                                             (2, 3, 5, 5)), ValueError, r"^argmax: value -1"),
        (lambda: _cpu.global_avgpool_forward_f64(np.zeros((2, 3, 4, 4)), np.zeros((2, 4))), ValueError,
         r"^out: shape \(2, 4\), expected \(2, 3\)"),
    ],
)
def test_global_pooling_bad_input(f, exc, match):
    with pytest.raises(exc, match=match):
        f()
