"""Scaled dot-product attention (ops.sdpa_*) against fastconv.reference.sdpa, numerical gradients, bad
input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, TOL_DOT, f64, randn, to_device, to_host
from fastconv import ops
from fastconv.functions import numerical_gradient
from fastconv.reference import sdpa as ref

# (B, L, S, E, F): one of everything, odd sizes, keys longer and shorter than queries, a Transformer head
SHAPES = [(1, 1, 1, 1, 1), (3, 5, 7, 4, 6), (2, 9, 2, 13, 3), (16, 35, 35, 64, 64)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "mask"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_sdpa(rng, device, dtype, shape, dropout):
    B, L, S, E, F = shape
    q, k, v = randn(rng, (B, L, E), dtype), randn(rng, (B, S, E), dtype), randn(rng, (B, S, F), dtype)
    dout = randn(rng, (B, L, F), dtype)
    mask = (rng.random((B, L, S)) > 0.3).astype(dtype) / dtype(0.7) if dropout else None
    scale = 1.0 / np.sqrt(E)
    r_out, r_p = ref.sdpa_forward(f64(q), f64(k), f64(v), scale, None if mask is None else f64(mask))
    dev = [to_device(a, device) for a in (q, k, v)]
    dmask = None if mask is None else to_device(mask, device)
    out, p = ops.sdpa_forward(*dev, scale, mask=dmask)
    assert to_host(out).dtype == dtype and out.shape == (B, L, F)
    np.testing.assert_allclose(to_host(p), r_p, **TOL[dtype], err_msg=f"{shape} p")
    np.testing.assert_allclose(to_host(out), r_out, **TOL_DOT[dtype], err_msg=f"{shape} out")
    got = ops.sdpa_backward(*dev, p, to_device(dout, device), scale, mask=dmask)
    want = ref.sdpa_backward(
        f64(q), f64(k), f64(v), r_p, f64(dout), scale, None if mask is None else f64(mask)
    )
    for g, w, name in zip(got, want, ("dq", "dk", "dv")):
        np.testing.assert_allclose(to_host(g), w, **TOL_DOT[dtype], err_msg=f"{shape} {name}")


def test_sdpa_numerical_gradient(rng):
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    w = rng.standard_normal((2, 3, 3))
    mask = (rng.random((2, 3, 5)) > 0.4) / 0.6
    for m in (None, mask):

        def loss(_, m=m):
            return float(np.sum(ops.sdpa_forward(q, k, v, 0.7, mask=m)[0] * w))

        _, p = ops.sdpa_forward(q, k, v, 0.7, mask=m)
        for got, a in zip(ops.sdpa_backward(q, k, v, p, w, 0.7, mask=m), (q, k, v)):
            np.testing.assert_allclose(got, numerical_gradient(loss, a), **GRAD_TOL)
        r_p = ref.sdpa_forward(q, k, v, 0.7, m)[1]
        np.testing.assert_allclose(
            ref.sdpa_backward(q, k, v, r_p, w, 0.7, m)[0], numerical_gradient(loss, q), **GRAD_TOL
        )


def test_sdpa_bad_input():
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))
    with pytest.raises(ValueError, match=r"k: shape \(2, 5, 3\), expected \(2, 5, 4\)"):
        ops.sdpa_forward(q, np.zeros((2, 5, 3)), v, 1.0)
    with pytest.raises(ValueError, match=r"v: shape \(2, 4, 6\), expected \(2, 5, 6\)"):
        ops.sdpa_forward(q, k, np.zeros((2, 4, 6)), 1.0)
    with pytest.raises(ValueError, match=r"q: expected .*\(B, L, E\)"):
        ops.sdpa_forward(np.zeros((3, 4)), k, v, 1.0)
    with pytest.raises(ValueError, match=r"mask: shape \(2, 3, 4\), expected \(2, 3, 5\)"):
        ops.sdpa_forward(q, k, v, 1.0, mask=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"k: empty array"):
        ops.sdpa_forward(q, np.zeros((2, 0, 4)), np.zeros((2, 0, 6)), 1.0)
    with pytest.raises(TypeError, match=r"scale"):
        ops.sdpa_forward(q, k, v, "1")
    with pytest.raises(TypeError, match=r"q: dtype int64 is not supported"):
        ops.sdpa_forward(q.astype(np.int64), k, v, 1.0)
    _, p = ops.sdpa_forward(q, k, v, 1.0)
    with pytest.raises(ValueError, match=r"dout: shape \(2, 3, 4\), expected \(2, 3, 6\)"):
        ops.sdpa_backward(q, k, v, p, np.zeros((2, 3, 4)), 1.0)
    with pytest.raises(ValueError, match=r"p: shape \(2, 3, 3\), expected \(2, 3, 5\)"):
        ops.sdpa_backward(q, k, v, np.zeros((2, 3, 3)), np.zeros((2, 3, 6)), 1.0)
