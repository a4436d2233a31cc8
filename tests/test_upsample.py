"""Upsampling (nearest and bilinear, align_corners=False) by integer factors against fastconv.reference and,
where torch is importable, F.interpolate: forward, backward, numerical gradients, thread-count independence
and bad input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_F64_TIGHT, f64, randn, to_device, to_host
from fastconv import _cpu, layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

# (N, C, H, W, scale): 1x1 planes, one row / column, odd and non-square sizes, scales 1, 2, 3 and pairs
CASES = [
    (1, 1, 1, 1, 2),
    (2, 3, 4, 5, 2),
    (1, 2, 1, 7, 3),
    (3, 2, 5, 1, (2, 3)),
    (2, 4, 7, 7, 2),
    (1, 3, 6, 4, (3, 1)),
    (2, 2, 3, 3, 1),
    (4, 16, 14, 14, 2),
]


def case_id(c):
    s = c[4] if isinstance(c[4], int) else f"{c[4][0]}x{c[4][1]}"
    return "x".join(map(str, c[:4])) + f"-s{s}"


CASE_IDS = [case_id(c) for c in CASES]


def tol(dtype):
    return TOL_F64_TIGHT if dtype == np.float64 else TOL[dtype]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_upsampling(rng, device, dtype, case, mode):
    shape, scale = case[:4], case[4]
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    x = randn(rng, shape, dtype)
    ref, layer = ref_layers.Upsampling(scale, mode), layers.Upsampling(scale, mode)
    out = to_host(layer.forward(to_device(x, device)))
    r_out = ref.forward(f64(x))
    assert out.dtype == dtype and out.shape == (shape[0], shape[1], shape[2] * sh, shape[3] * sw)
    np.testing.assert_allclose(out, r_out, **tol(dtype), err_msg=f"{case} {mode}")
    dout = randn(rng, out.shape, dtype)
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.backward(f64(dout)), **tol(dtype), err_msg=f"{case} {mode}")


def test_nearest_is_repeat(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out = layers.Upsampling((2, 3)).forward(x)
    np.testing.assert_array_equal(out, x.repeat(2, axis=2).repeat(3, axis=3))
    assert layers.Upsampling().scale == 2 and layers.Upsampling().mode == "nearest"


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [2, 3, (2, 3)], ids=["s2", "s3", "s2x3"])
def test_upsampling_matches_torch(rng, dtype, mode, scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = randn(rng, (2, 3, 5, 6), dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    kw = {"align_corners": False} if mode == "bilinear" else {}
    sf = scale if isinstance(scale, int) else tuple(float(s) for s in scale)
    out_t = F.interpolate(xt, scale_factor=sf, mode=mode, **kw)
    dout = randn(rng, tuple(out_t.shape), dtype)
    out_t.backward(torch.from_numpy(dout))
    layer = layers.Upsampling(scale, mode)
    out = layer.forward(x)
    t = TOL[dtype] if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    np.testing.assert_allclose(out, out_t.detach().numpy(), **t)
    np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), **t)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("mod", ["fastconv", "reference"])
def test_upsampling_numerical_gradient(rng, mod, mode):
    m = layers if mod == "fastconv" else ref_layers
    x = rng.standard_normal((2, 2, 3, 4))
    layer = m.Upsampling((2, 3), mode)
    w = rng.standard_normal((2, 2, 6, 12))

    def loss(_):
        return float(np.sum(w * layer.forward(x)))

    loss(None)
    np.testing.assert_allclose(layer.backward(w), ref_functions.numerical_gradient(loss, x), **GRAD_TOL)


def test_upsampling_same_bits_any_thread_count(rng, num_threads):
    x = randn(rng, (16, 32, 14, 14), np.float32)
    dout = randn(rng, (16, 32, 28, 28), np.float32)
    got = []
    for n in (1, 2, 3):
        num_threads(n)
        modes = ("nearest", "bilinear")
        got.append([ops.upsample_forward(x, 2, m) for m in modes]
                   + [ops.upsample_backward(dout, x.shape, 2, m) for m in modes])
    for r in got[1:]:
        for a, b in zip(got[0], r):
            np.testing.assert_array_equal(a, b)


def test_upsampling_non_contiguous(rng, dtype):
    x = randn(rng, (2, 5, 6, 3), dtype).transpose(0, 3, 1, 2)  # channels-last memory
    for mode in ("nearest", "bilinear"):
        np.testing.assert_allclose(layers.Upsampling(2, mode).forward(x),
                                   ref_layers.Upsampling(2, mode).forward(f64(x)), **TOL[dtype], err_msg=mode)


@pytest.mark.parametrize(
    "f, exc, match",
    [
        (lambda: layers.Upsampling(0).forward(np.zeros((1, 1, 2, 2))), ValueError,
         r"^scale must be >= 1, got 0"),
        (lambda: layers.Upsampling(1.5).forward(np.zeros((1, 1, 2, 2))), TypeError,
         r"^scale: expected an int, got float"),
        (lambda: layers.Upsampling((2, 0)).forward(np.zeros((1, 1, 2, 2))), ValueError,
         r"^scale\[1\] must be >= 1, got 0"),
        (lambda: layers.Upsampling((2, 2, 2)).forward(np.zeros((1, 1, 2, 2))), ValueError,
         r"^scale: expected an int or a pair"),
        (lambda: layers.Upsampling(2, "bicubic").forward(np.zeros((1, 1, 2, 2))), ValueError,
         r"^mode: expected one of 'nearest', 'bilinear', got 'bicubic'"),
        (lambda: layers.Upsampling(2**40).forward(np.zeros((1, 1, 2**12, 2**12), np.float32)[:, :, :1, :1]),
         ValueError, r"^scale: the out array would have"),
        (lambda: layers.Upsampling().forward(np.zeros((2, 2, 2))), ValueError, r"^x: expected a 4-D array"),
        (lambda: layers.Upsampling().forward(np.zeros((1, 1, 2, 2), int)), TypeError, r"^x: dtype int64"),
        (lambda: ops.upsample_backward(np.zeros((1, 1, 4, 5)), (1, 1, 2, 2)), ValueError,
         r"^dout: shape \(1, 1, 4, 5\), expected \(1, 1, 4, 4\)"),
        (lambda: _cpu.upsample_bilinear_forward_f64(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)), 0, 2),
         ValueError, r"^scale_h must be >= 1, got 0"),
        (lambda: _cpu.upsample_nearest_forward_f64(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)), 2, 2**62),
         ValueError, r"^out: size overflows"),
    ],
)
def test_upsampling_bad_input(f, exc, match):
    with pytest.raises(exc, match=match):
        f()
