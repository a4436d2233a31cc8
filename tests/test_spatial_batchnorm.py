"""SpatialBatchNormalization (per-channel statistics over N, H, W): training / inference forward, backward and
running statistics against fastconv.reference, numerical gradients, float32 stability, thread-count
independence, bad input, and torch's BatchNorm2d where torch is importable."""

import fastconv
import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_F64_TIGHT, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

# (N, C, H, W): batch 1, one channel, 1x1 planes, odd sizes, a DCGAN-sized 7x7 and a 28x28 plane
SHAPES = [(1, 3, 4, 5), (2, 1, 3, 3), (4, 5, 1, 1), (3, 7, 5, 3), (8, 16, 7, 7), (2, 4, 28, 28), (5, 2, 1, 9)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def tol(dtype):
    return TOL_F64_TIGHT if dtype == np.float64 else TOL[dtype]


def make(rng, shape, dtype, offset=0.5):
    C = shape[1]
    x = (2 * randn(rng, shape, dtype) + offset).astype(dtype)
    gamma = (1 + 0.3 * randn(rng, (C,), dtype)).astype(dtype)
    beta = (0.3 * randn(rng, (C,), dtype)).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("momentum", [0.9, 0.5])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_spatial_batchnorm_train(rng, device, dtype, shape, momentum):
    x, gamma, beta = make(rng, shape, dtype)
    ref = ref_layers.SpatialBatchNormalization(*f64(gamma, beta), momentum=momentum)
    layer = layers.SpatialBatchNormalization(to_device(gamma, device), to_device(beta, device),
                                             momentum=momentum)
    for step in range(3):  # running statistics accumulate over several batches
        xb = (x * (1 + step) + step).astype(dtype)
        dout = randn(rng, shape, dtype)
        r_out = ref.forward(f64(xb), train_flg=True)
        r_dx = ref.backward(f64(dout))
        out = to_host(layer.forward(to_device(xb, device), train_flg=True))
        assert out.dtype == dtype and out.shape == shape
        np.testing.assert_allclose(out, r_out, **tol(dtype), err_msg=f"{shape} step {step} out")
        dx = to_host(layer.backward(to_device(dout, device)))
        assert dx.dtype == dtype and dx.shape == shape
        # dx is a difference of terms of the size of dout: compare on that scale
        np.testing.assert_allclose(dx, r_dx, rtol=tol(dtype)["rtol"],
                                   atol=tol(dtype)["atol"] * max(1.0, np.abs(r_dx).max()),
                                   err_msg=f"{shape} step {step} dx")
        for name in ("dgamma", "dbeta"):
            got, want = to_host(getattr(layer, name)), getattr(ref, name)
            assert got.dtype == dtype and got.shape == want.shape
            scale = max(1.0, np.abs(want).max())
            np.testing.assert_allclose(got, want, rtol=tol(dtype)["rtol"], atol=tol(dtype)["atol"] * scale,
                                       err_msg=f"{shape} {name}")
        for name in ("running_mean", "running_var"):
            got = to_host(getattr(layer, name))
            assert got.dtype == dtype
            np.testing.assert_allclose(got, getattr(ref, name), **tol(dtype), err_msg=f"{shape} {name}")
    xt = randn(rng, shape, dtype)
    np.testing.assert_allclose(
        to_host(layer.forward(to_device(xt, device), train_flg=False)),
        ref.forward(f64(xt), train_flg=False),
        **tol(dtype),
        err_msg=f"{shape} inference",
    )


def test_spatial_batchnorm_statistics_per_channel(rng, device):
    """Training output has mean beta and variance gamma**2 * var / (var + eps) in every channel."""
    x = rng.standard_normal((6, 4, 5, 5)) * np.array([0.1, 1.0, 10.0, 100.0])[None, :, None, None]
    gamma, beta = np.array([1.0, 2.0, 0.5, 3.0]), np.array([0.0, -1.0, 2.0, 0.5])
    layer = layers.SpatialBatchNormalization(to_device(gamma, device), to_device(beta, device), eps=1e-5)
    out = to_host(layer.forward(to_device(x, device)))
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), gamma**2 * var / (var + 1e-5), rtol=1e-12)


def test_spatial_batchnorm_inference_with_given_stats(rng, device, dtype):
    x, gamma, beta = make(rng, (3, 4, 5, 6), dtype)
    mean = randn(rng, (4,), dtype)
    var = (np.abs(randn(rng, (4,), dtype)) + 0.1).astype(dtype)
    args = (to_device(a, device) for a in (gamma, beta))
    layer = layers.SpatialBatchNormalization(*args, running_mean=to_device(mean.copy(), device),
                                             running_var=to_device(var.copy(), device))
    ref = ref_layers.SpatialBatchNormalization(*f64(gamma, beta), running_mean=f64(mean),
                                               running_var=f64(var))
    out = to_host(layer.forward(to_device(x, device), train_flg=False))
    np.testing.assert_allclose(out, ref.forward(f64(x), train_flg=False), **tol(dtype))
    np.testing.assert_array_equal(to_host(layer.running_mean), mean)  # inference leaves them alone
    np.testing.assert_array_equal(to_host(layer.running_var), var)


def test_spatial_batchnorm_numerical_gradient(rng):
    """dx, dgamma, dbeta of the fastconv layer and of the reference against central differences (float64)."""
    x = rng.standard_normal((3, 2, 3, 4)) + 1.0
    gamma, beta = 1 + 0.3 * rng.standard_normal(2), 0.3 * rng.standard_normal(2)
    w = rng.standard_normal(x.shape)  # loss = sum(w * out): a generic dout

    for mod in (layers, ref_layers):
        layer = mod.SpatialBatchNormalization(gamma, beta)

        def loss(_):
            return float(np.sum(w * layer.forward(x, train_flg=True)))

        loss(None)
        dx = layer.backward(w.copy())
        grads = {"dx": dx, "dgamma": layer.dgamma.copy(), "dbeta": layer.dbeta.copy()}
        np.testing.assert_allclose(grads["dx"], ref_functions.numerical_gradient(loss, x), **GRAD_TOL,
                                   err_msg=f"{mod.__name__} dx")
        np.testing.assert_allclose(grads["dgamma"], ref_functions.numerical_gradient(loss, gamma), **GRAD_TOL,
                                   err_msg=f"{mod.__name__} dgamma")
        np.testing.assert_allclose(grads["dbeta"], ref_functions.numerical_gradient(loss, beta), **GRAD_TOL,
                                   err_msg=f"{mod.__name__} dbeta")


def test_spatial_batchnorm_float32_large_offset(rng, device):
    """A channel whose mean is 1e4 times its spread: float32 inputs, statistics still right (shifted sums in
    double), where a naive float32 E[x^2] - E[x]^2 would lose every digit of the variance."""
    x = (1e4 + rng.standard_normal((16, 3, 8, 8))).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    layer = layers.SpatialBatchNormalization(to_device(gamma, device), to_device(beta, device))
    out = to_host(layer.forward(to_device(x, device)))
    ref = ref_layers.SpatialBatchNormalization(*f64(gamma, beta)).forward(f64(x))
    np.testing.assert_allclose(out, ref, **TOL[np.float32])
    np.testing.assert_allclose(to_host(layer.running_var), 0.1 * f64(x).var(axis=(0, 2, 3)), rtol=1e-5)


def test_spatial_batchnorm_constant_channel(device, dtype):
    """A constant channel has variance 0: eps keeps out (= beta) and the gradients finite."""
    x = np.ones((4, 2, 3, 3), dtype=dtype)
    x[:, 1] = np.arange(36, dtype=dtype).reshape(4, 3, 3)
    layer = layers.SpatialBatchNormalization(to_device(np.ones(2, dtype), device),
                                             to_device(np.full(2, 0.25, dtype), device))
    out = to_host(layer.forward(to_device(x, device)))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], 0.25, **TOL[dtype])
    assert np.isfinite(to_host(layer.backward(to_device(np.ones_like(x), device)))).all()


def test_spatial_batchnorm_same_bits_any_thread_count(rng, num_threads):
    x, gamma, beta = make(rng, (8, 6, 20, 20), np.float32)
    dout = randn(rng, x.shape, np.float32)
    results = []
    for n in (1, 2, 3):
        num_threads(n)
        layer = layers.SpatialBatchNormalization(gamma, beta)
        out = layer.forward(x)
        dx = layer.backward(dout)
        results.append((out, dx, layer.dgamma, layer.dbeta, layer.running_var))
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dt", ["float32", "float64", "float16", "bfloat16"])
def test_spatial_batchnorm_same_bits_every_isa(rng, dt):
    """The baseline and AVX2 builds of the kernels (spatial_batchnorm_kernels.h; avx512 runs the AVX2 one) sum in
    the same fixed lanes without fused multiply-adds: every ISA gives the same bits. Plane sizes with and without
    a tail of the 8 lanes, and a training step, an inference forward and a backward."""
    if dt == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    else:
        dtype = np.dtype(dt)
    isas = [name for name in ("scalar", "avx2", "avx512") if name in fastconv._cpu.supported_isas()]
    if len(isas) < 2:
        pytest.skip("one ISA only on this machine")
    prev = fastconv._cpu.cpu_isa()
    for shape in ((8, 6, 20, 20), (3, 5, 7, 7)):
        x, gamma, beta = (a.astype(dtype) for a in make(rng, shape, np.float64))
        dout = randn(rng, shape, np.float64).astype(dtype)
        results = {}
        try:
            for isa in isas:
                fastconv._cpu.set_cpu_isa(isa)
                layer = layers.SpatialBatchNormalization(gamma, beta)
                out = layer.forward(x, train_flg=True)
                dx = layer.backward(dout)
                infer = layer.forward(x, train_flg=False)
                results[isa] = (out, dx, layer.dgamma, layer.dbeta, layer.running_mean, layer.running_var, infer)
        finally:
            fastconv._cpu.set_cpu_isa(prev)
        for isa in isas[1:]:
            for a, b in zip(results[isas[0]], results[isa]):
                np.testing.assert_array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8),
                                              err_msg=f"{dt} {shape}: {isas[0]} vs {isa}")


def test_spatial_batchnorm_gamma_shape_and_user_stats(rng, device):
    """gamma / beta of any shape with C elements give dgamma / dbeta of that shape; running statistics passed
    as non-contiguous or other-dtype arrays are updated in place."""
    x = rng.standard_normal((4, 3, 2, 2))
    gamma, beta = np.ones((1, 3, 1, 1)), np.zeros((1, 3, 1, 1))
    rm = to_device(np.zeros(6), device)[::2]
    rv = to_device(np.ones(3, dtype=np.float32), device)
    layer = layers.SpatialBatchNormalization(to_device(gamma, device), to_device(beta, device),
                                             running_mean=rm, running_var=rv)
    layer.forward(to_device(x, device))
    layer.backward(to_device(np.ones_like(x), device))
    assert layer.dgamma.shape == gamma.shape and layer.dbeta.shape == beta.shape
    np.testing.assert_allclose(to_host(rm), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(to_host(rv), 0.9 + 0.1 * x.var(axis=(0, 2, 3)), rtol=1e-6)


# ======================================================================================================
# bad input


BAD_CALLS = [
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3)).forward(np.zeros((2, 3))), ValueError,
     r"^x: expected a 4-D array"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3)).forward(np.zeros((0, 3, 2, 2))),
     ValueError, r"^x: empty array"),
    (lambda: layers.SpatialBatchNormalization(np.ones(4), np.zeros(3)).forward(np.zeros((2, 3, 2, 2))),
     ValueError, r"^gamma: shape \(4,\) has 4 elements, expected 3"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(2)).forward(np.zeros((2, 3, 2, 2))),
     ValueError, r"^beta: shape"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3)).forward(np.zeros((2, 3, 2, 2), int)),
     TypeError, r"^x: dtype int64"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3), eps=0).forward(np.zeros((2, 3, 2, 2))),
     ValueError, r"^eps must be > 0, got 0"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3), momentum="a")
     .forward(np.ones((2, 3, 2, 2))), TypeError, r"^momentum: expected a real number"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3), running_mean=np.zeros(2))
     .forward(np.ones((2, 3, 2, 2))), ValueError, r"^running_mean: shape \(2,\)"),
    (lambda: layers.SpatialBatchNormalization(np.ones(3), np.zeros(3)).backward(np.ones((2, 3, 2, 2))),
     ValueError, r"^dout: backward needs a training-mode forward"),
    (lambda: ops.spatial_batchnorm_backward(np.ones((2, 3, 2, 2)), np.ones((2, 3, 2, 1)), np.zeros(3),
                                            np.ones(3), np.ones(3)), ValueError, r"^x: shape \(2, 3, 2, 1\)"),
    (lambda: ops.spatial_batchnorm_backward(np.ones((2, 3, 2, 2)), np.ones((2, 3, 2, 2)), np.zeros(2),
                                            np.ones(3), np.ones(3)), ValueError, r"^mean: shape \(2,\)"),
    (lambda: ops.spatial_batchnorm_backward(np.ones((2, 3, 2, 2)), np.ones((2, 3, 2, 2)), np.zeros(3),
                                            np.ones(3, int), np.ones(3)), TypeError, r"^invstd: dtype int64"),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_spatial_batchnorm_bad_input(i):
    f, exc, match = BAD_CALLS[i]
    with pytest.raises(exc, match=match):
        f()


def test_spatial_batchnorm_read_only_running_stats():
    rm = np.zeros(3)
    rm.flags.writeable = False
    layer = layers.SpatialBatchNormalization(np.ones(3), np.zeros(3), running_mean=rm,
                                             running_var=np.zeros(3))
    with pytest.raises(ValueError, match=r"^running_mean: array is read-only"):
        layer.forward(np.ones((2, 3, 2, 2)))
    layer.forward(np.ones((2, 3, 2, 2)), train_flg=False)  # inference only reads them


def test_spatial_batchnorm_raw_binding_rejects():
    from fastconv import _cpu

    x = np.ones((2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"^gamma: shape \(2,\), expected \(3,\)"):
        _cpu.spatial_batchnorm_forward_infer_f64(x, np.ones(2), np.zeros(3), np.zeros(3), np.ones(3),
                                                 np.empty_like(x), 1e-5)
    with pytest.raises(TypeError, match=r"^mean: dtype float32, expected float64"):
        _cpu.spatial_batchnorm_forward_train_f64(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3),
                                                 np.empty_like(x), np.empty(3, np.float32), np.empty(3), 0.9,
                                                 1e-5)
    with pytest.raises(ValueError, match=r"^eps must be > 0"):
        _cpu.spatial_batchnorm_forward_infer_f64(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3),
                                                 np.empty_like(x), -1.0)


# ======================================================================================================
# torch's BatchNorm2d (an independent implementation), where torch is importable


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 8, 7, 7)], ids=["4x3x5x5", "2x8x7x7"])
def test_spatial_batchnorm_matches_torch(rng, dtype, shape):
    torch = pytest.importorskip("torch")
    x, gamma, beta = make(rng, shape, dtype)
    dout = randn(rng, shape, dtype)
    C = shape[1]
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    # torch's momentum weighs the new value
    bn = torch.nn.BatchNorm2d(C, eps=1e-5, momentum=0.1, dtype=tdtype)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t = bn(xt)
    out_t.backward(torch.from_numpy(dout))
    layer = layers.SpatialBatchNormalization(gamma, beta, momentum=0.9, eps=1e-5,
                                             running_mean=np.zeros(C, dtype), running_var=np.ones(C, dtype))
    out = layer.forward(x)
    dx = layer.backward(dout)
    t = TOL[dtype] if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}
    np.testing.assert_allclose(out, out_t.detach().numpy(), **t)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=t["rtol"], atol=t["atol"] * 10)
    np.testing.assert_allclose(layer.dgamma, bn.weight.grad.numpy(), rtol=t["rtol"], atol=t["atol"] * 10)
    np.testing.assert_allclose(layer.dbeta, bn.bias.grad.numpy(), rtol=t["rtol"], atol=t["atol"] * 10)
    np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), **t)
    # torch keeps the unbiased batch variance in its running average, fastconv (as the book) the biased one
    M = shape[0] * shape[2] * shape[3]
    var_b = (bn.running_var.numpy() - 0.9) / 0.1 * (M - 1) / M
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose((layer.running_var - 0.9) / 0.1, var_b, rtol=rtol)
