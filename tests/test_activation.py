"""Relu / Sigmoid layers (and ops.relu_*/sigmoid_*, functions.relu/sigmoid) against fastconv.reference."""

import warnings

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_F64_TIGHT, f64, randn, to_device, to_host
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
def test_relu_layer(rng, device, dtype, shape):
    x = randn(rng, shape, dtype)
    x.flat[0] = 0.0  # the kink: forward 0, backward 0 (mask is x <= 0)
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.Relu(), layers.Relu()
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, ref.forward(x), err_msg=f"{shape}")
    np.testing.assert_array_equal(to_host(layer.mask), ref.mask)
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, ref.backward(dout), err_msg=f"{shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_sigmoid_layer(rng, device, dtype, shape):
    x = (4 * randn(rng, shape, dtype)).astype(dtype)
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.Sigmoid(), layers.Sigmoid()
    r_out = ref.forward(f64(x))
    r_dx = ref.backward(f64(dout))
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"{shape}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"{shape}")


def test_activations_non_contiguous(rng, device, dtype):
    for name, x in views(rng, dtype):
        dout = randn(rng, x.shape, dtype)[..., ::-1]
        xd, doutd = to_device(x, device), to_device(dout, device)
        relu = layers.Relu()
        np.testing.assert_array_equal(to_host(relu.forward(xd)), np.maximum(x, 0), err_msg=name)
        np.testing.assert_array_equal(to_host(relu.backward(doutd)), np.where(x > 0, dout, 0), err_msg=name)
        sig = layers.Sigmoid()
        out = to_host(sig.forward(xd))
        np.testing.assert_allclose(out, ref_functions.sigmoid(f64(x)), **TOL[dtype], err_msg=name)
        np.testing.assert_allclose(
            to_host(sig.backward(doutd)), f64(dout) * (1 - f64(out)) * f64(out), **TOL[dtype], err_msg=name
        )


def test_relu_nan_like_numpy(device, dtype):
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf, -np.nan], dtype=dtype)
    out = to_host(ops.relu_forward(to_device(x, device)))
    np.testing.assert_array_equal(out, np.maximum(x, 0))  # NaN propagates, like np.maximum
    np.testing.assert_array_equal(out, ref_functions.relu(x))
    layer, ref = layers.Relu(), ref_layers.Relu()
    layer.forward(to_device(x, device))
    ref.forward(x)
    dout = np.arange(1, 8, dtype=dtype)
    np.testing.assert_array_equal(to_host(layer.backward(to_device(dout, device))), ref.backward(dout))


def test_sigmoid_extremes_finite_without_warnings(device, dtype):
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_host(ops.sigmoid_forward(to_device(x, device)))
        f = to_host(functions.sigmoid(to_device(x, device)))
    assert np.isfinite(out).all()
    assert out[0] == 0.0 or out[0] < 1e-40
    assert out[-1] == 1.0 and out[3] == 0.5
    np.testing.assert_array_equal(out, f)
    np.testing.assert_allclose(out, ref_functions.sigmoid(f64(x)), **TOL[dtype])


def test_sigmoid_nan_propagates(device):
    out = to_host(ops.sigmoid_forward(to_device(np.array([np.nan, 1.0]), device)))
    assert np.isnan(out[0]) and not np.isnan(out[1])


def test_functions_module(rng, device, dtype):
    x = randn(rng, (3, 4, 5), dtype)
    xd = to_device(x, device)
    np.testing.assert_array_equal(to_host(functions.relu(xd)), np.maximum(x, 0))
    np.testing.assert_allclose(
        to_host(functions.sigmoid_grad(xd)),
        ref_functions.sigmoid(f64(x)) * (1 - ref_functions.sigmoid(f64(x))),
        **TOL[dtype],
    )
    np.testing.assert_array_equal(to_host(functions.relu_grad(xd)), (x >= 0).astype(dtype))
    assert functions.relu_grad(xd).dtype == dtype
    np.testing.assert_array_equal(to_host(functions.step_function(xd)), (x > 0).astype(int))
    assert functions.identity_function(xd) is xd


def test_empty_input(device, dtype):
    x = to_device(np.empty((0, 3), dtype=dtype), device)
    assert ops.relu_forward(x).shape == (0, 3)
    assert ops.sigmoid_forward(x).shape == (0, 3)


# ======================================================================================================
# LeakyRelu and Tanh (issue 16)


def _tol(dtype):
    return TOL_F64_TIGHT if dtype == np.float64 else TOL[dtype]


@pytest.mark.parametrize("alpha", [0.2, 0.0, 0.01, 1.5])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_leaky_relu_layer(rng, device, dtype, shape, alpha):
    x = randn(rng, shape, dtype)
    x.flat[0] = 0.0  # the kink: the book's mask x <= 0 takes the alpha side
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.LeakyRelu(alpha), layers.LeakyRelu(alpha)
    r_out, r_dx = ref.forward(f64(x)), ref.backward(f64(dout))
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, r_out, **_tol(dtype), err_msg=f"{shape} alpha={alpha}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, r_dx, **_tol(dtype), err_msg=f"{shape} alpha={alpha}")


def test_leaky_relu_default_alpha_and_nan(device, dtype):
    x = np.array([np.nan, -2.0, 0.0, 3.0, -np.inf, np.inf], dtype=dtype)
    layer = layers.LeakyRelu()
    assert layer.alpha == 0.2
    out = to_host(layer.forward(to_device(x, device)))
    np.testing.assert_array_equal(out, np.array([np.nan, -0.4, 0.0, 3.0, -np.inf, np.inf], dtype=dtype))
    ref = ref_layers.LeakyRelu()
    ref.forward(x)
    dout = np.arange(1, 7, dtype=dtype)
    dx = to_host(layer.backward(to_device(dout, device)))
    np.testing.assert_array_equal(dx, ref.backward(dout))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_tanh_layer(rng, device, dtype, shape):
    x = (3 * randn(rng, shape, dtype)).astype(dtype)
    dout = randn(rng, shape, dtype)
    ref, layer = ref_layers.Tanh(), layers.Tanh()
    r_out, r_dx = ref.forward(f64(x)), ref.backward(f64(dout))
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, r_out, **_tol(dtype), err_msg=f"{shape}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype
    # dx uses the layer's own rounded output: compare on the scale of dout
    np.testing.assert_allclose(dx, r_dx, rtol=_tol(dtype)["rtol"], atol=_tol(dtype)["atol"] * 10,
                               err_msg=f"{shape}")


def test_tanh_extremes(device, dtype):
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0, np.nan], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_host(ops.tanh_forward(to_device(x, device)))
    np.testing.assert_array_equal(out[:5], np.array([-1, -1, 0, 1, 1], dtype=dtype))
    assert np.isnan(out[5])


def test_leaky_relu_tanh_non_contiguous(rng, device, dtype):
    for name, x in views(rng, dtype):
        dout = randn(rng, x.shape, dtype)[..., ::-1]
        pairs = ((layers.LeakyRelu(0.1), ref_layers.LeakyRelu(0.1)), (layers.Tanh(), ref_layers.Tanh()))
        for layer, ref in pairs:
            out = to_host(layer.forward(to_device(x, device)))
            np.testing.assert_allclose(out, ref.forward(f64(x)), **TOL[dtype], err_msg=name)
            dx = to_host(layer.backward(to_device(dout, device)))
            np.testing.assert_allclose(dx, ref.backward(f64(dout)), rtol=TOL[dtype]["rtol"],
                                       atol=10 * TOL[dtype]["atol"], err_msg=name)


@pytest.mark.parametrize("mod", ["fastconv", "reference"])
def test_leaky_relu_tanh_numerical_gradient(rng, mod):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep central differences off the kink
    w = rng.standard_normal(x.shape)
    m = layers if mod == "fastconv" else ref_layers
    for layer in (m.LeakyRelu(0.3), m.Tanh()):
        def loss(_, layer=layer):
            return float(np.sum(w * layer.forward(x)))

        loss(None)
        dx = layer.backward(w)
        np.testing.assert_allclose(dx, ref_functions.numerical_gradient(loss, x), **GRAD_TOL,
                                   err_msg=type(layer).__name__)


@pytest.mark.parametrize(
    "f, exc, match",
    [
        (lambda: layers.LeakyRelu(-0.1).forward(np.ones(3)), ValueError,
          r"^alpha must be a finite number >= 0, got -0.1"),
        (lambda: layers.LeakyRelu(float("nan")).forward(np.ones(3)), ValueError, r"^alpha must be a finite"),
        (lambda: layers.LeakyRelu("0.2").forward(np.ones(3)), TypeError, r"^alpha: expected a real number"),
        (lambda: layers.LeakyRelu().forward(np.ones(3, int)), TypeError, r"^x: dtype int64"),
        (lambda: layers.Tanh().forward(np.ones(3, np.complex64)), TypeError, r"^x: dtype complex64"),
        (lambda: ops.leaky_relu_backward(np.ones(3), np.ones(4)), ValueError,
         r"^dout: shape \(3,\), expected \(4,\)"),
        (lambda: ops.tanh_backward(np.ones((2, 3)), np.ones((3, 2))), ValueError, r"^dout: shape \(2, 3\)"),
        (lambda: ops.tanh_forward(None), TypeError, r"^x: expected an array, got None"),
    ],
)
def test_leaky_relu_tanh_bad_input(f, exc, match):
    with pytest.raises(exc, match=match):
        f()
