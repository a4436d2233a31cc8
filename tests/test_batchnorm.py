"""BatchNormalization: training / inference forward, backward and running statistics against the reference."""

import numpy as np
import pytest
from conftest import TOL, f64, randn, to_device, to_host
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
def test_batchnorm_train(rng, device, dtype, shape, momentum):
    x, gamma, beta = make(rng, shape, dtype)
    ref = ref_layers.BatchNormalization(*f64(gamma, beta), momentum=momentum)
    layer = layers.BatchNormalization(to_device(gamma, device), to_device(beta, device), momentum=momentum)
    for step in range(3):  # running statistics accumulate over several batches
        xb = (x + step).astype(dtype)
        dout = randn(rng, shape, dtype)
        r_out = ref.forward(f64(xb), train_flg=True)
        r_dx = ref.backward(f64(dout))
        out = to_host(layer.forward(to_device(xb, device), train_flg=True))
        assert out.dtype == dtype and out.shape == shape
        np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"{shape} step {step} out")
        dx = to_host(layer.backward(to_device(dout, device)))
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"{shape} step {step} dx")
        np.testing.assert_allclose(to_host(layer.dgamma), ref.dgamma, **TOL[dtype], err_msg=f"{shape} dgamma")
        np.testing.assert_allclose(to_host(layer.dbeta), ref.dbeta, **TOL[dtype], err_msg=f"{shape} dbeta")
        np.testing.assert_allclose(
            to_host(layer.running_mean), ref.running_mean, **TOL[dtype], err_msg=f"{shape} mean"
        )
        np.testing.assert_allclose(to_host(layer.running_var), ref.running_var, **TOL[dtype],
                                   err_msg=f"{shape} var")
        assert layer.running_mean.dtype == dtype
    # inference uses the running statistics
    xt = randn(rng, shape, dtype)
    np.testing.assert_allclose(
        to_host(layer.forward(to_device(xt, device), train_flg=False)),
        ref.forward(f64(xt), train_flg=False),
        **TOL[dtype],
        err_msg=f"{shape} inference",
    )


def test_batchnorm_inference_with_given_stats(rng, device, dtype):
    x, gamma, beta = make(rng, (6, 4), dtype)
    mean = randn(rng, (4,), dtype)
    var = (np.abs(randn(rng, (4,), dtype)) + 0.1).astype(dtype)
    gamma_d, beta_d, mean_d, var_d = (to_device(a, device) for a in (gamma, beta, mean.copy(), var.copy()))
    layer = layers.BatchNormalization(gamma_d, beta_d, running_mean=mean_d, running_var=var_d)
    ref = ref_layers.BatchNormalization(*f64(gamma, beta), running_mean=f64(mean), running_var=f64(var))
    out = to_host(layer.forward(to_device(x, device), False))
    np.testing.assert_allclose(out, ref.forward(f64(x), False), **TOL[dtype])
    # inference does not touch the statistics
    np.testing.assert_array_equal(to_host(layer.running_mean), mean)


def test_batchnorm_running_stats_user_arrays_updated(rng, device):
    """Running statistics passed as non-contiguous / other-dtype arrays are still updated in place."""
    x = rng.standard_normal((8, 3))
    rm = to_device(np.zeros(6), device)[::2]
    rv = to_device(np.ones(3, dtype=np.float32), device)
    xd, gamma, beta = (to_device(a, device) for a in (x, np.ones(3), np.zeros(3)))
    ops.batchnorm_forward_train(xd, gamma, beta, rm, rv, 0.9, 1e-6)
    np.testing.assert_allclose(to_host(rm), 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(to_host(rv), 0.9 + 0.1 * x.var(axis=0), rtol=1e-6)


def test_batchnorm_constant_feature(device, dtype):
    """A constant column has variance 0: eps keeps the output finite (= beta) and the gradient finite."""
    x = np.ones((5, 2), dtype=dtype)
    x[:, 1] = np.arange(5)
    gamma, beta = to_device(np.ones(2, dtype), device), to_device(np.full(2, 0.25, dtype), device)
    layer = layers.BatchNormalization(gamma, beta)
    out = to_host(layer.forward(to_device(x, device)))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], 0.25, **TOL[dtype])
    assert np.isfinite(to_host(layer.backward(to_device(np.ones_like(x), device)))).all()


def test_batchnorm_4d_gamma_shape(rng, device):
    """4-D inputs are normalised per C*H*W element (the book's flattening); dgamma keeps gamma's shape."""
    x = rng.standard_normal((4, 2, 3, 3))
    gamma, beta = np.ones((2, 3, 3)), np.zeros((2, 3, 3))
    layer = layers.BatchNormalization(to_device(gamma, device), to_device(beta, device))
    out = to_host(layer.forward(to_device(x, device)))
    layer.backward(to_device(np.ones_like(x), device))
    assert layer.dgamma.shape == gamma.shape and layer.dbeta.shape == beta.shape
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
