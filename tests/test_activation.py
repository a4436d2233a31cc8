"""Relu / Sigmoid layers (and ops.relu_*/sigmoid_*, functions.relu/sigmoid) against fastconv.reference."""

import warnings

import numpy as np
import pytest
from conftest import TOL, f64, randn
from fastconv import functions, layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (8, 16, 7, 7), (2, 1, 3, 1, 2)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def views(rng, dtype):
    """Non-contiguous inputs: transposed 4-D, sliced, Fortran-ordered, negative strides."""
    base = randn(rng, (4, 6, 8, 10), dtype)
    yield "transposed", base.transpose(0, 2, 3, 1)
    yield "sliced", base[:, ::2, 1:, ::3]
    yield "fortran", np.asfortranarray(base)
    yield "reversed", base[::-1, :, ::-1]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_relu_layer(rng, dtype, shape):
    x = randn(rng, shape, dtype)
    x.flat[0] = 0.0  # the kink: forward 0, backward 0 (mask is x <= 0)
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.Relu(), layers.Relu()
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, ref.forward(x), err_msg=f"{shape}")
    np.testing.assert_array_equal(layer.mask, ref.mask)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, ref.backward(dout), err_msg=f"{shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_sigmoid_layer(rng, dtype, shape):
    x = (4 * randn(rng, shape, dtype)).astype(dtype)
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.Sigmoid(), layers.Sigmoid()
    r_out = ref.forward(f64(x))
    r_dx = ref.backward(f64(dout))
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"{shape}")
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"{shape}")


def test_activations_non_contiguous(rng, dtype):
    for name, x in views(rng, dtype):
        dout = randn(rng, x.shape, dtype)[..., ::-1]
        relu = layers.Relu()
        np.testing.assert_array_equal(relu.forward(x), np.maximum(x, 0), err_msg=name)
        np.testing.assert_array_equal(relu.backward(dout), np.where(x > 0, dout, 0), err_msg=name)
        sig = layers.Sigmoid()
        out = sig.forward(x)
        np.testing.assert_allclose(out, ref_functions.sigmoid(f64(x)), **TOL[dtype], err_msg=name)
        np.testing.assert_allclose(
            sig.backward(dout), f64(dout) * (1 - f64(out)) * f64(out), **TOL[dtype], err_msg=name
        )


def test_relu_nan_like_numpy(dtype):
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf, -np.nan], dtype=dtype)
    out = ops.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))  # NaN propagates, like np.maximum
    np.testing.assert_array_equal(out, ref_functions.relu(x))
    layer, ref = layers.Relu(), ref_layers.Relu()
    layer.forward(x)
    ref.forward(x)
    dout = np.arange(1, 8, dtype=dtype)
    np.testing.assert_array_equal(layer.backward(dout), ref.backward(dout))


def test_sigmoid_extremes_finite_without_warnings(dtype):
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ops.sigmoid_forward(x)
        f = functions.sigmoid(x)
    assert np.isfinite(out).all()
    assert out[0] == 0.0 or out[0] < 1e-40
    assert out[-1] == 1.0 and out[3] == 0.5
    np.testing.assert_array_equal(out, f)
    np.testing.assert_allclose(out, ref_functions.sigmoid(f64(x)), **TOL[dtype])


def test_sigmoid_nan_propagates():
    out = ops.sigmoid_forward(np.array([np.nan, 1.0]))
    assert np.isnan(out[0]) and not np.isnan(out[1])


def test_functions_module(rng, dtype):
    x = randn(rng, (3, 4, 5), dtype)
    np.testing.assert_array_equal(functions.relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(
        functions.sigmoid_grad(x),
        ref_functions.sigmoid(f64(x)) * (1 - ref_functions.sigmoid(f64(x))),
        **TOL[dtype],
    )
    np.testing.assert_array_equal(functions.relu_grad(x), (x >= 0).astype(dtype))
    assert functions.relu_grad(x).dtype == dtype
    np.testing.assert_array_equal(functions.step_function(x), (x > 0).astype(int))
    assert functions.identity_function(x) is x


def test_empty_input(dtype):
    x = np.empty((0, 3), dtype=dtype)
    assert ops.relu_forward(x).shape == (0, 3)
    assert ops.sigmoid_forward(x).shape == (0, 3)
