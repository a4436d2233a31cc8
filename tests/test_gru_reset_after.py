"""Keras 3's GRU kernel (ops.gru_reset_after_*, reset_after=True) against fastconv.reference.time_layers:
forward, backward and every gradient in float32 and float64 for each GEMM ISA, the same bits on any thread
count, numerical gradients on tiny sizes, bad input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL_DOT, f64, randn, to_device, to_host
from fastconv import ops
from fastconv.functions import numerical_gradient
from fastconv.reference import time_layers as ref

# (N, T, D, H) as test_time_layers' cells: one of everything, odd sizes, past the GEMM tiles, the sequel's
# sizes
CASES = [(1, 1, 1, 1), (3, 5, 4, 6), (1, 7, 3, 2), (4, 2, 17, 33), (20, 35, 13, 9)]
IDS = ["N{}T{}D{}H{}".format(*c) for c in CASES]


def params(rng, D, H, dtype):
    return [
        (randn(rng, (D, 3 * H), dtype) / np.sqrt(D)).astype(dtype),
        (randn(rng, (H, 3 * H), dtype) / np.sqrt(H)).astype(dtype),
        randn(rng, (3 * H,), dtype),
        randn(rng, (3 * H,), dtype),
    ]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gru_reset_after(rng, device, isa, dtype, case):
    N, T, D, H = case
    Wx, Wh, bx, bh = params(rng, D, H, dtype)
    xs, h0, dhs = randn(rng, (N, T, D), dtype), randn(rng, (N, H), dtype), randn(rng, (N, T, H), dtype)
    r_hs, caches = ref.gru_reset_after_forward(*f64(xs, Wx, Wh, bx, bh, h0))
    dev = [to_device(a, device) for a in (xs, Wx, Wh)]
    hs, gates, rec = ops.gru_reset_after_forward(
        *dev, to_device(bx, device), to_device(bh, device), to_device(h0, device)
    )
    assert to_host(hs).dtype == dtype and hs.shape == (N, T, H)
    np.testing.assert_allclose(to_host(hs), r_hs, **TOL_DOT[dtype], err_msg=f"{isa} {case} hs")
    got = ops.gru_reset_after_backward(*dev, to_device(h0, device), hs, gates, rec, to_device(dhs, device))
    r_dxs, r_dh0, *r_grads = ref.gru_reset_after_backward(f64(dhs), caches, *f64(Wx, Wh))
    want = (r_dxs, *r_grads[:2], r_grads[2], r_grads[3], r_dh0)
    for g, w, name in zip(got, want, ("dxs", "dWx", "dWh", "dbx", "dbh", "dh0")):
        np.testing.assert_allclose(to_host(g), w, **TOL_DOT[dtype], err_msg=f"{isa} {case} {name}")


def test_gru_reset_after_same_bits_any_thread_count(rng, num_threads):
    N, T, D, H = 20, 4, 40, 256
    Wx, Wh, bx, bh = params(rng, D, H, np.float32)
    xs, h0, dhs = (
        randn(rng, (N, T, D), np.float32),
        randn(rng, (N, H), np.float32),
        randn(rng, (N, T, H), np.float32),
    )
    results = []
    for n in (1, 2):
        num_threads(n)
        hs, gates, rec = ops.gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0)
        results.append([hs, *ops.gru_reset_after_backward(xs, Wx, Wh, h0, hs, gates, rec, dhs)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_gru_reset_after_numerical_gradient(rng):
    N, T, D, H = 2, 3, 3, 2
    Wx, Wh, bx, bh = params(rng, D, H, np.float64)
    xs, h0, w = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, T, H))

    def loss(_):
        return float(np.sum(ops.gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0)[0] * w))

    hs, gates, rec = ops.gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0)
    got = ops.gru_reset_after_backward(xs, Wx, Wh, h0, hs, gates, rec, w)
    for g, p in zip(got, (xs, Wx, Wh, bx, bh, h0)):
        np.testing.assert_allclose(g, numerical_gradient(loss, p), **GRAD_TOL)
    _, caches = ref.gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0)
    r_dxs, r_dh0, *_ = ref.gru_reset_after_backward(w, caches, Wx, Wh)
    np.testing.assert_allclose(r_dxs, numerical_gradient(loss, xs), **GRAD_TOL)
    np.testing.assert_allclose(r_dh0, numerical_gradient(loss, h0), **GRAD_TOL)


def test_gru_reset_after_bad_input():
    xs, Wx, Wh, b, h0 = np.zeros((2, 3, 4)), np.zeros((4, 6)), np.zeros((2, 6)), np.zeros(6), np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"bh: shape \(5,\), expected \(6,\)"):
        ops.gru_reset_after_forward(xs, Wx, Wh, b, np.zeros(5), h0)
    with pytest.raises(ValueError, match=r"Wh"):
        ops.gru_reset_after_forward(xs, Wx, np.zeros((2, 5)), b, b, h0)
    with pytest.raises(ValueError, match=r"h0: shape \(3, 2\), expected \(2, 2\)"):
        ops.gru_reset_after_forward(xs, Wx, Wh, b, b, np.zeros((3, 2)))
    hs, gates, rec = ops.gru_reset_after_forward(xs, Wx, Wh, b, b, h0)
    with pytest.raises(ValueError, match=r"rec: shape \(2, 2, 2\), expected \(2, 3, 2\)"):
        ops.gru_reset_after_backward(xs, Wx, Wh, h0, hs, gates, np.zeros((2, 2, 2)), np.zeros((2, 3, 2)))
