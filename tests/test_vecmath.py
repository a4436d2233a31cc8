"""The float32 rows of cpu/vecmath.h (sigmoid, tanh, softmax: the recurrent cells' gates and the softmax over
time compute with them) against float64 on every ISA variant, in units in the last place of the float32
result: sigmoid within 3 ulp, tanh within 4 (vecmath_simd.h derives both), each softmax probability within
a few ulp plus the rounding of the double sum, the log-sum-exp within 2e-7 relative; specials as NumPy's."""

import numpy as np
import pytest
from fastconv import _cpu


def ulps(got, want):
    """|got - want| in float32 ulps of want (the spacing at |want|, the smallest normal's below it)."""
    want = np.asarray(want, np.float64)
    at = np.maximum(np.abs(want), np.finfo(np.float32).tiny).astype(np.float32)
    spacing = np.spacing(at).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def grid():
    """Every float32 in [-1, 1] at a stride of 97 bit patterns, and the range past it to +-100 densely: the
    polynomial's range, the switch at 0.4, the saturation and exp's clamps."""
    lo = np.arange(0, np.float32(1.0).view(np.int32), 97, dtype=np.int32).view(np.float32)
    hi = np.linspace(1.0, 100.0, 200001, dtype=np.float32)
    x = np.concatenate([lo, hi, np.float32([0.4]), np.nextafter(np.float32([0.4, 0.4]), np.float32([0, 1]))])
    return np.concatenate([x, -x])


def run(fn, x):
    y = np.empty_like(x)
    fn(x, y)
    return y


def test_tanh_within_4_ulp(isa):
    x = grid()
    got = run(_cpu.vecmath_tanh, x)
    err = ulps(got, np.tanh(x.astype(np.float64)))
    assert err.max() <= 4, f"{isa}: {err.max():.1f} ulp at x = {x[err.argmax()]!r}"
    assert np.array_equal(np.signbit(got), np.signbit(x))  # odd, -0.0 included


def test_sigmoid_within_3_ulp(isa):
    x = grid()
    got = run(_cpu.vecmath_sigmoid, x)
    x64 = x.astype(np.float64)
    want = 1.0 / (1.0 + np.exp(-x64))
    err = ulps(got, want)
    # below -87 exp_approx clamps: sigmoid is e^x there, smaller than 1.7e-38, and stays a tiny positive
    # number rather than a denormal; its absolute error is under float32's smallest normal
    ok = x64 > -87.0
    assert err[ok].max() <= 3, f"{isa}: {err[ok].max():.1f} ulp at x = {x[ok][err[ok].argmax()]!r}"
    assert (np.abs(got[~ok] - want[~ok]) < np.finfo(np.float32).tiny).all()


@pytest.mark.parametrize("fn", ["vecmath_tanh", "vecmath_sigmoid"])
def test_specials(isa, fn):
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38])
    got = run(getattr(_cpu, fn), x)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        want = np.tanh(x64) if fn == "vecmath_tanh" else 1.0 / (1.0 + np.exp(-x64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{isa} {fn}")
    # sigmoid(-inf) is e^-88 / (1 + e^-88), 6e-39, not 0: exp_approx clamps at -87 (fast_exp.h)
    atol = np.finfo(np.float32).tiny if fn == "vecmath_sigmoid" else 0.0
    np.testing.assert_allclose(
        got[~np.isnan(got)], want[~np.isnan(want)], rtol=2e-7, atol=atol, err_msg=f"{isa} {fn}"
    )


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 1000, 10000])
def test_softmax_row(isa, rng, n):
    x = (rng.standard_normal(n) * 8).astype(np.float32)
    y = np.empty_like(x)
    lse = _cpu.vecmath_softmax(x, y)
    # the kernel subtracts the max in float32 (as the sequel's NumPy code does): the reference takes the same
    # rounded differences, exactly
    d = (x - x.max()).astype(np.float64)
    want = np.exp(d) / np.exp(d).sum()
    want_lse = np.log(np.exp(d).sum()) + float(x.max())
    # each exp within 2 ulp, the float32 rounding of the double sum and the division: 4 ulp of the probability
    assert ulps(y, want).max() <= 4, f"{isa} n={n}"
    assert abs(lse - want_lse) <= 2e-7 * max(1.0, abs(want_lse)), f"{isa} n={n}: {lse} vs {want_lse}"


def test_softmax_extremes_and_nan(isa):
    x = np.float32([-1e30, 0.0, 88.0, 88.0, -np.inf])
    y = np.empty_like(x)
    lse = _cpu.vecmath_softmax(x, y)
    # exps below e^-87 are clamped there (fast_exp.h): probabilities under float32's smallest normal are not
    # resolved
    want = [0, np.exp(-88.0) / 2, 0.5, 0.5, 0]
    np.testing.assert_allclose(y, want, rtol=4e-7, atol=np.finfo(np.float32).tiny)
    assert abs(lse - (88.0 + np.log(2.0))) < 1e-5
    x[1] = np.nan
    lse = _cpu.vecmath_softmax(x, y)
    assert np.isnan(y).all() and np.isnan(lse), isa
    assert _cpu.vecmath_softmax(np.empty(0, np.float32), np.empty(0, np.float32)) == -np.inf
