"""Layer normalisation (ops.layernorm_*) against fastconv.reference.layernorm, numerical gradients, bad
input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, TOL, f64, randn, to_device, to_host
from fastconv import ops
from fastconv.functions import numerical_gradient
from fastconv.reference import layernorm as ref

# x shapes: one feature, one row, odd sizes, a Transformer's (batch, steps, d_model), rows past a column block
SHAPES = [(1, 1), (1, 7), (5, 3), (2, 9, 16), (3, 4, 130), (700, 65)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_layernorm(rng, device, dtype, shape):
    D = shape[-1]
    x = (3 * randn(rng, shape, dtype) + 1).astype(dtype)
    gamma, beta, dout = randn(rng, (D,), dtype), randn(rng, (D,), dtype), randn(rng, shape, dtype)
    r_out, cache = ref.layernorm_forward(f64(x), f64(gamma), f64(beta))
    out, mean, rstd = ops.layernorm_forward(*(to_device(a, device) for a in (x, gamma, beta)))
    assert to_host(out).dtype == dtype and out.shape == shape
    np.testing.assert_allclose(to_host(out), r_out, **TOL[dtype], err_msg=f"{shape} out")
    got = ops.layernorm_backward(
        *(to_device(a, device) for a in (x, gamma)), mean, rstd, to_device(dout, device)
    )
    # dgamma and dbeta sum over every row: float32 sums of many terms get TOL_DOT-like absolute error
    tol = TOL[dtype] if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    for g, w, name in zip(got, ref.layernorm_backward(f64(dout), cache), ("dx", "dgamma", "dbeta")):
        np.testing.assert_allclose(to_host(g), w, **tol, err_msg=f"{shape} {name}")


def test_layernorm_numerical_gradient(rng):
    x, gamma, beta, w = (rng.standard_normal(s) for s in ((3, 5), (5,), (5,), (3, 5)))

    def loss(_):
        return float(np.sum(ops.layernorm_forward(x, gamma, beta)[0] * w))

    _, mean, rstd = ops.layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = ops.layernorm_backward(x, gamma, mean, rstd, w)
    for got, p in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(got, numerical_gradient(loss, p), **GRAD_TOL)
    r_dx = ref.layernorm_backward(w, ref.layernorm_forward(x, gamma, beta)[1])[0]
    np.testing.assert_allclose(r_dx, numerical_gradient(loss, x), **GRAD_TOL)


def test_layernorm_bad_input():
    x = np.zeros((2, 4))
    with pytest.raises(
        ValueError, match=r"gamma: shape \(3,\), expected \(4,\) \(one per feature of x \(2, 4\)\)"
    ):
        ops.layernorm_forward(x, np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"x: empty array"):
        ops.layernorm_forward(np.zeros((0, 4)), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"eps must be > 0, got 0.0"):
        ops.layernorm_forward(x, np.ones(4), np.zeros(4), eps=0.0)
    with pytest.raises(TypeError, match=r"x: dtype int64 is not supported"):
        ops.layernorm_forward(x.astype(np.int64), np.ones(4), np.zeros(4))
    _, mean, rstd = ops.layernorm_forward(x, np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"dout: shape \(2, 3\), expected \(2, 4\)"):
        ops.layernorm_backward(x, np.ones(4), mean, rstd, np.zeros((2, 3)))
