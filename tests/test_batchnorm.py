"""BatchNormalization: training / inference forward, backward and running statistics against the reference."""

import numpy as np
import pytest
from conftest import TOL, f64, randn
from fastconv import layers, ops
from fastconv.reference import layers as ref_layers

SHAPES = [(2, 1), (8, 5), (3, 17), (64, 100), (4, 3, 5, 5), (5, 16, 2, 3)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def make(rng, shape, dtype):
    D = int(np.prod(shape[1:]))
    x = (2 * randn(rng, shape, dtype) + 0.5).astype(dtype)
    gamma = (1 + 0.3 * randn(rng, (D,), dtype)).astype(dtype)
    beta = (0.3 * randn(rng, (D,), dtype)).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("momentum", [0.9, 0.5])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_batchnorm_train(rng, dtype, shape, momentum):
    x, gamma, beta = make(rng, shape, dtype)
    ref = ref_layers.BatchNormalization(*f64(gamma, beta), momentum=momentum)
    layer = layers.BatchNormalization(gamma, beta, momentum=momentum)
    for step in range(3):  # running statistics accumulate over several batches
        xb = (x + step).astype(dtype)
        dout = randn(rng, shape, dtype)
        r_out = ref.forward(f64(xb), train_flg=True)
        r_dx = ref.backward(f64(dout))
        out = layer.forward(xb, train_flg=True)
        assert out.dtype == dtype and out.shape == shape
        np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"{shape} step {step} out")
        dx = layer.backward(dout)
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"{shape} step {step} dx")
        np.testing.assert_allclose(layer.dgamma, ref.dgamma, **TOL[dtype], err_msg=f"{shape} dgamma")
        np.testing.assert_allclose(layer.dbeta, ref.dbeta, **TOL[dtype], err_msg=f"{shape} dbeta")
        np.testing.assert_allclose(
            layer.running_mean, ref.running_mean, **TOL[dtype], err_msg=f"{shape} mean"
        )
        np.testing.assert_allclose(layer.running_var, ref.running_var, **TOL[dtype], err_msg=f"{shape} var")
        assert layer.running_mean.dtype == dtype
    # inference uses the running statistics
    xt = randn(rng, shape, dtype)
    np.testing.assert_allclose(
        layer.forward(xt, train_flg=False),
        ref.forward(f64(xt), train_flg=False),
        **TOL[dtype],
        err_msg=f"{shape} inference",
    )


def test_batchnorm_inference_with_given_stats(rng, dtype):
    x, gamma, beta = make(rng, (6, 4), dtype)
    mean = randn(rng, (4,), dtype)
    var = (np.abs(randn(rng, (4,), dtype)) + 0.1).astype(dtype)
    layer = layers.BatchNormalization(gamma, beta, running_mean=mean.copy(), running_var=var.copy())
    ref = ref_layers.BatchNormalization(*f64(gamma, beta), running_mean=f64(mean), running_var=f64(var))
    np.testing.assert_allclose(layer.forward(x, False), ref.forward(f64(x), False), **TOL[dtype])
    np.testing.assert_array_equal(layer.running_mean, mean)  # inference does not touch the statistics


def test_batchnorm_running_stats_user_arrays_updated(rng):
    """Running statistics passed as non-contiguous / other-dtype arrays are still updated in place."""
    x = rng.standard_normal((8, 3))
    rm = np.zeros(6)[::2]
    rv = np.ones(3, dtype=np.float32)
    ops.batchnorm_forward_train(x, np.ones(3), np.zeros(3), rm, rv, 0.9, 1e-6)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=0), rtol=1e-6)


def test_batchnorm_constant_feature(dtype):
    """A constant column has variance 0: eps keeps the output finite (= beta) and the gradient finite."""
    x = np.ones((5, 2), dtype=dtype)
    x[:, 1] = np.arange(5)
    layer = layers.BatchNormalization(np.ones(2, dtype), np.full(2, 0.25, dtype))
    out = layer.forward(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], 0.25, **TOL[dtype])
    assert np.isfinite(layer.backward(np.ones_like(x))).all()


def test_batchnorm_4d_gamma_shape(rng):
    """4-D inputs are normalised per C*H*W element (the book's flattening); dgamma keeps gamma's shape."""
    x = rng.standard_normal((4, 2, 3, 3))
    gamma, beta = np.ones((2, 3, 3)), np.zeros((2, 3, 3))
    layer = layers.BatchNormalization(gamma, beta)
    out = layer.forward(x)
    layer.backward(np.ones_like(x))
    assert layer.dgamma.shape == gamma.shape and layer.dbeta.shape == beta.shape
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
