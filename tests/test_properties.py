"""Property-based tests (hypothesis) of the whole public API against ``fastconv.reference``.

Three kinds of properties:

* **Agreement.** Random valid cases -- small shapes (N 1..4, C 1..5, H/W 1..12, filters 1..5 and non-square,
  stride 1..3 and now and then a huge one, pad 0..2, pool pad < window), float32 / float64 (now and then mixed),
  memory orders (C, Fortran, a strided view ``big[..., ::k]`` whose gaps hold NaN, a transposed view, negative
  strides), values in [-10, 10] (one array in four from ``hnp.arrays``: ties, 0, +-10, subnormals; the others
  dense uniform values from a drawn seed) -- agree with the pure-NumPy reference computed in float64 from the
  same (rounded) inputs. Each op shares its generated case with its backward, its layer class and its
  functions/util wrapper, so every one of them sees the same count of cases.
* **Non-finite values.** NaN / Inf inside float inputs are data, not errors: they propagate as in NumPy.
* **Invalid calls.** Random invalid calls across ops, layers, util and functions raise ``ValueError`` or
  ``TypeError`` (the type is asserted per kind) whose message *starts* with the name of the offending argument.

Tolerances (``assert_close``). float64: ``rtol=1e-10`` and ``atol=1e-10 * s``; float32: ``rtol=1e-4`` and
``atol = TOL[f32]["atol"] * s`` (element-wise) or ``TOL_DOT[f32]["atol"] * s`` (sums: GEMM, convolution, affine,
col2im, pooling, batch norm). ``s = max(1, max|ref|, magnitude)``: conftest's atols were measured on O(1)
standard-normal data, the values here reach 10, so the absolute part scales with the size of the numbers
involved. For sums, ``magnitude`` is the largest sum of absolute terms (the reference run on ``|inputs|``),
which bounds the rounding error whatever the cancellation; for batch norm it also carries the 1/std
amplification (``std >= sqrt(eps) = 1e-3``) that float rounding of ``x - mean`` goes through.

``test_regression_*`` pin down bugs these properties found (each docstring says what was wrong); all are fixed.

Every property runs once per device (conftest's ``DEVICES``: "cpu", and "cuda", skipped with fastconv's
reason where it is not available): inputs are drawn and the reference is run on the host, fastconv is called on
arrays put on the device with ``to_device``, and its results come back with ``to_host`` to be compared.

Example counts come from the hypothesis profile (conftest: ``FASTCONV_HYPOTHESIS=ci|quick``); a failing example
lists the ops it ran.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from conftest import DEVICES, TOL, TOL_DOT, n_examples, to_device, to_host
from fastconv import functions, layers, ops, util
from fastconv import reference as R
from hypothesis import Phase, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# When a property fails, hypothesis' pytest plugin imports hypothesis.extra._patching (to suggest a patch), which
# imports libcst where installed; libcst's import emits a DeprecationWarning (mypy_extensions.TypedDict) that
# filterwarnings=error turns into a pytest INTERNALERROR hiding the failure. Import it now, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst is not installed: the plugin skips the patch
        pass

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# Hypothesis refuses function-scoped fixtures in @given tests, so the device comes from a parametrisation
# over conftest's DEVICES (the list the ``device`` fixture takes its params from: the same ids, the same
# "cuda" mark and skip). Set for the whole module: a test that does not take ``device`` fails at collection.
pytestmark = pytest.mark.parametrize("device", DEVICES)

# Cases per generated-case property (each op, layer and wrapper in it gets this many) and invalid calls per
# invalid-call property (five of them: 10,000 in all under "ci").
N_VALID = n_examples(2000)
N_INVALID = n_examples(2000)
N_NONFINITE = n_examples(300)
N_BUG = n_examples(50)

VALID = settings(max_examples=N_VALID)
NONFINITE = settings(max_examples=N_NONFINITE)
INVALID = settings(max_examples=N_INVALID)
# known bugs fail at once: report the first failing example as drawn (no shrinking, no hunt for more bugs)
# regression tests for bugs these properties found (all fixed); no shrinking, fail fast
BUG = settings(max_examples=N_BUG, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)


# ======================================================================================================
# strategies


def f64(a) -> np.ndarray:
    """C-contiguous float64 copy (what the reference runs on)."""
    return np.array(a, dtype=np.float64, order="C")


def draw_dtypes(data, k: int) -> list:
    """k float dtypes from one draw: all float32 or all float64, one case in five a mix."""
    code = data.draw(st.integers(0, 5 * 2**k - 1), label="dtypes")
    if code < 4 * 2**k:
        return [(F32, F64)[code % 2]] * k
    bits = code - 4 * 2**k
    return [(F32, F64)[(bits >> i) & 1] for i in range(k)]


# Hypothesis' cost here is per primitive draw (~50-100 us), so an array's layout, and its values when they do
# not come from hnp.arrays, derive from one drawn integer; shrinking it to 0 gives hnp.arrays in C order.
LAYOUTS = ["C", "F", "strided", "transposed", "reversed"]


def apply_layout(a: np.ndarray, code: int) -> np.ndarray:
    """``a``'s values in the memory layout picked by ``code``: C order, Fortran order, a strided view into a bigger
    array whose gaps hold NaN (so reading them shows), a transposed view, or negative strides."""
    kind = LAYOUTS[code % len(LAYOUTS)]
    code //= len(LAYOUTS)
    if a.ndim == 0 or kind == "C":
        return a
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        axis, step = code % a.ndim, 2 + (code // a.ndim) % 2
        big_shape = list(a.shape)
        big_shape[axis] *= step
        big = np.full(big_shape, np.nan, a.dtype) if a.dtype.kind == "f" else np.zeros(big_shape, a.dtype)
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(None, None, step)
        view = big[tuple(idx)]
        view[...] = a
        return view
    if kind == "transposed":
        perm = np.random.default_rng(code).permutation(a.ndim)
        return np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    return np.ascontiguousarray(a[::-1])[::-1]  # negative strides on axis 0


# dtypes a device array holds (CuPy's: bool, integers, float16/32/64, complex64/128); arrays of other
# dtypes (object, strings, datetimes, structured, long double) exist only in NumPy: they stay NumPy arrays
DEVICE_DTYPE_CHARS = "?" + np.typecodes["AllInteger"] + "efdFD"


def on_device(v, device):
    """``v`` for a call on ``device``: an array through ``to_device`` (unless of a dtype only NumPy holds), a
    dict's values one by one; anything else (scalars, shapes, None) as it is."""
    if isinstance(v, dict):
        return {k: on_device(a, device) for k, a in v.items()}
    if isinstance(v, np.ndarray) and v.dtype.char in DEVICE_DTYPE_CHARS:
        return to_device(v, device)
    return v


def relayout(data, a: np.ndarray, label="layout") -> np.ndarray:
    return apply_layout(a, data.draw(st.integers(0, 2**16 - 1), label=label))


def farr(data, shape, dtype, lo=-10.0, hi=10.0, layout=True, label="array") -> np.ndarray:
    """Bounded finite float array in a drawn layout. One array in four comes from ``hnp.arrays`` (few distinct
    values: ties, and edge values such as 0, +-10, subnormals); the others hold dense uniform values."""
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    v = data.draw(st.integers(0, 2**48 - 1), label=label)
    if v % 4 == 0:
        elems = st.floats(lo, hi, width=32 if dtype == F32 else 64, allow_nan=False, allow_infinity=False)
        a = data.draw(hnp.arrays(dtype, shape, elements=elems), label=label)
    else:
        a = np.random.default_rng(v).uniform(lo, hi, shape).astype(dtype)
    return apply_layout(a, v >> 2) if layout else a


SPECIALS = [np.nan, np.inf, -np.inf]


def farr_special(data, shape, dtype, label="array") -> np.ndarray:
    """Float array in [-10, 10] with NaN / +Inf / -Inf mixed in."""
    dtype = np.dtype(dtype)
    elems = st.one_of(
        st.floats(-10, 10, width=32 if dtype == F32 else 64, allow_nan=False), st.sampled_from(SPECIALS)
    )
    a = data.draw(hnp.arrays(dtype, tuple(shape), elements=elems), label=label)
    return relayout(data, a)


def draw_stride(data, huge_max: int) -> int:
    """1..3, and one case in twenty a huge stride (a 1-wide output along each axis it exceeds)."""
    if data.draw(st.integers(0, 19), label="huge stride?") == 0:
        return data.draw(st.integers(4, huge_max), label="stride")
    return data.draw(st.integers(1, 3), label="stride")


class Geom:
    """A window geometry (convolution or pooling) with its output size."""

    def __init__(self, N, C, H, W, FH, FW, stride, pad, FN=None):
        self.N, self.C, self.H, self.W, self.FH, self.FW, self.stride, self.pad, self.FN = (
            N,
            C,
            H,
            W,
            FH,
            FW,
            stride,
            pad,
            FN,
        )
        self.OH = (H + 2 * pad - FH) // stride + 1
        self.OW = (W + 2 * pad - FW) // stride + 1

    @property
    def x_shape(self):
        return (self.N, self.C, self.H, self.W)

    def __repr__(self):
        return (
            f"Geom(x={self.x_shape}, filter={self.FH}x{self.FW}, FN={self.FN}, stride={self.stride}, "
            f"pad={self.pad}, out={self.OH}x{self.OW})"
        )


def draw_conv_geom(data, fn=False, max_hw=12) -> Geom:
    """Valid convolution geometry, built directly: pad, then the image, then a filter that fits the padded image."""
    N = data.draw(st.integers(1, 4), label="N")
    C = data.draw(st.integers(1, 5), label="C")
    H = data.draw(st.integers(1, max_hw), label="H")
    W = data.draw(st.integers(1, max_hw), label="W")
    pad = data.draw(st.integers(0, 2), label="pad")
    FH = data.draw(st.integers(1, min(5, H + 2 * pad)), label="FH")
    FW = data.draw(st.integers(1, min(5, W + 2 * pad)), label="FW")
    stride = draw_stride(data, 2**40)  # the bindings' limit for window parameters
    FN = data.draw(st.integers(1, 5), label="FN") if fn else None
    g = Geom(N, C, H, W, FH, FW, stride, pad, FN)
    note(repr(g))
    return g


def draw_pool_geom(data, max_hw=12) -> Geom:
    """Valid pooling geometry: window 1..4 (non-square too), pad < window, image at least window - 2*pad."""
    N = data.draw(st.integers(1, 4), label="N")
    C = data.draw(st.integers(1, 5), label="C")
    PH = data.draw(st.integers(1, 4), label="pool_h")
    PW = data.draw(st.integers(1, 4), label="pool_w")
    pad = data.draw(st.integers(0, min(2, PH - 1, PW - 1)), label="pad")
    H = data.draw(st.integers(max(1, PH - 2 * pad), max_hw), label="H")
    W = data.draw(st.integers(max(1, PW - 2 * pad), max_hw), label="W")
    stride = draw_stride(data, 2**40)  # the window-parameter limit (ops and bindings)
    g = Geom(N, C, H, W, PH, PW, stride, pad)
    note(repr(g))
    return g


def draw_any_shape(data, min_ndim=1, max_ndim=4, min_side=0, max_side=5) -> tuple:
    ndim = data.draw(st.integers(min_ndim, max_ndim), label="ndim")
    return tuple(data.draw(st.integers(min_side, max_side), label="side") for _ in range(ndim))


# ======================================================================================================
# comparisons


def _amax(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a).max()) if a.size else 0.0


def assert_close(got, ref, dtype, *, scale=0.0, dot=False, what="", compute_dtype=None):
    """``got`` (of ``dtype``, on any device) equals the float64 reference ``ref`` to the documented tolerance
    (module docstring) of ``compute_dtype`` (default ``dtype``: the dtype the kernel computed in)."""
    got = np.asarray(to_host(got))
    ref = np.asarray(ref)
    dtype = np.dtype(dtype)
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    s = max(1.0, _amax(ref), float(scale))
    if np.dtype(compute_dtype or dtype) == F64:
        rtol, atol = 1e-10, 1e-10 * s
    else:
        rtol, atol = 1e-4, (TOL_DOT if dot else TOL)[np.float32]["atol"] * s
    g = got.astype(np.float64)
    with np.errstate(invalid="ignore"):
        if np.all(np.abs(g - ref) <= atol + rtol * np.abs(ref)):  # the fast path; NaN fails it
            return
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def assert_same_nonfinite(got, ref, dtype, *, scale=0.0, what=""):
    """NaN, +Inf and -Inf exactly where the reference has them (``got`` on any device); the finite elements
    close."""
    got = np.asarray(to_host(got), dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    for name, pred in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        g, r = pred(got), pred(ref)
        assert np.array_equal(g, r), (
            f"{what}: {name} at {np.argwhere(g).tolist()}, the reference has it at {np.argwhere(r).tolist()}\n"
            f"got {got}\nref {ref}"
        )
    fin = np.isfinite(ref)
    if fin.any():
        assert_close(got[fin].astype(dtype), ref[fin], dtype, scale=scale, dot=True, what=what)


def ran(*names):
    """Record which ops, layers and wrappers the case went through (shown with a failing example)."""
    note(f"ran {', '.join(names)}")


# ======================================================================================================
# agreement: GEMM


@VALID
@given(data=st.data())
def test_gemm_matches_numpy(device, data):
    M, K, N = (data.draw(st.integers(0, 12), label=s) for s in "MKN")
    ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    da, db = draw_dtypes(data, 2)
    # out may alias an operand (the wrapper must copy it first, as np.matmul does)
    alias = data.draw(st.sampled_from([None, None, None, "a", "b"]), label="out aliases")
    if alias:
        M = K = N = max(M, 1)
        da = db = np.result_type(da, db)
    rd = np.result_type(da, db)
    a = farr(data, (K, M) if ta else (M, K), da, layout=alias != "a", label="a")
    b = farr(data, (N, K) if tb else (K, N), db, layout=alias != "b", label="b")
    alpha = data.draw(st.one_of(st.just(1.0), st.floats(-3, 3), st.integers(-3, 3)), label="alpha")
    if alias:
        out = a if alias == "a" else b
    elif data.draw(st.booleans(), label="out given"):
        out = farr(data, (M, N), rd, layout=False, label="out")
    else:
        out = None
    beta = data.draw(st.one_of(st.just(0.0), st.floats(-3, 3)), label="beta") if out is not None else 0.0
    A, B = f64(a), f64(b)
    opA, opB = (A.T if ta else A), (B.T if tb else B)
    C0 = f64(out) if out is not None else np.zeros((M, N))
    ref = alpha * (opA @ opB) + beta * C0
    mag = abs(alpha) * (np.abs(opA) @ np.abs(opB)) + abs(beta) * np.abs(C0)

    ad, bd = to_device(a, device), to_device(b, device)
    outd = {"a": ad, "b": bd}[alias] if alias else to_device(out, device)
    got = ops.gemm(ad, bd, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=outd)
    if out is not None:
        assert got is outd
    assert_close(got, ref, rd, scale=_amax(mag), dot=True, what="gemm")
    ran("ops.gemm")


# ======================================================================================================
# agreement: im2col / col2im (ops and util, which are the same functions)


@VALID
@given(data=st.data())
def test_im2col_col2im_match_reference(device, data):
    g = draw_conv_geom(data)
    (dt,) = draw_dtypes(data, 1)
    x = farr(data, g.x_shape, dt, label="x")
    ref = R.util.im2col(f64(x), g.FH, g.FW, g.stride, g.pad)
    xd = to_device(x, device)
    for name, f in (("ops.im2col", ops.im2col), ("util.im2col", util.im2col)):
        col = to_host(f(xd, g.FH, g.FW, g.stride, g.pad))
        assert col.dtype == dt
        np.testing.assert_array_equal(col, ref.astype(dt), err_msg=name)  # a copy: exact
        ran(name)

    c = farr(data, ref.shape, dt, label="col")
    ref_x = R.util.col2im(f64(c), g.x_shape, g.FH, g.FW, g.stride, g.pad)
    mag = R.util.col2im(np.abs(f64(c)), g.x_shape, g.FH, g.FW, g.stride, g.pad)
    cd = to_device(c, device)
    for name, f in (("ops.col2im", ops.col2im), ("util.col2im", util.col2im)):
        shape = data.draw(st.sampled_from([tuple, list, np.array]), label="input_shape type")(g.x_shape)
        assert_close(
            f(cd, shape, g.FH, g.FW, g.stride, g.pad), ref_x, dt, scale=_amax(mag), dot=True, what=name
        )
        ran(name)


# ======================================================================================================
# agreement: convolution (ops and layers.Convolution)


@VALID
@given(data=st.data())
def test_conv_matches_reference(device, data):
    g = draw_conv_geom(data, fn=True)
    dx_, dw_, db_, dd_ = draw_dtypes(data, 4)
    x = farr(data, g.x_shape, dx_, label="x")
    W = farr(data, (g.FN, g.C, g.FH, g.FW), dw_, label="W")
    b = farr(data, (g.FN,), db_, label="b")
    dout = farr(data, (g.N, g.FN, g.OH, g.OW), dd_, label="dout")
    fwd_dt, bwd_dt = np.result_type(x, W, b), np.result_type(x, W, dout)

    ref = R.layers.Convolution(f64(W), f64(b), g.stride, g.pad)
    ref_out = ref.forward(f64(x))
    ref_dx = ref.backward(f64(dout))
    mag = R.layers.Convolution(np.abs(f64(W)), np.abs(f64(b)), g.stride, g.pad)
    mag_out = mag.forward(np.abs(f64(x)))
    mag_dx = mag.backward(np.abs(f64(dout)))

    x, W, b, dout = (to_device(a, device) for a in (x, W, b, dout))
    out = ops.conv_forward(x, W, b, g.stride, g.pad)
    assert_close(out, ref_out, fwd_dt, scale=_amax(mag_out), dot=True, what="conv_forward")
    dx, dW, db = ops.conv_backward(x, W, dout, g.stride, g.pad)
    assert_close(dx, ref_dx, bwd_dt, scale=_amax(mag_dx), dot=True, what="conv_backward dx")
    assert_close(dW, ref.dW, bwd_dt, scale=_amax(mag.dW), dot=True, what="conv_backward dW")
    assert_close(db, ref.db, bwd_dt, scale=_amax(mag.db), dot=True, what="conv_backward db")
    ran("ops.conv_forward", "ops.conv_backward")

    layer = layers.Convolution(W, b, g.stride, g.pad)
    assert_close(
        layer.forward(x), ref_out, fwd_dt, scale=_amax(mag_out), dot=True, what="Convolution.forward"
    )
    if fwd_dt == bwd_dt:  # the layer's dout comes from its own output dtype in a network
        assert_close(
            layer.backward(dout), ref_dx, bwd_dt, scale=_amax(mag_dx), dot=True, what="Convolution dx"
        )
        assert_close(layer.dW, ref.dW, bwd_dt, scale=_amax(mag.dW), dot=True, what="Convolution.dW")
        assert_close(layer.db, ref.db, bwd_dt, scale=_amax(mag.db), dot=True, what="Convolution.db")
    ran("layers.Convolution")


# ======================================================================================================
# agreement: pooling (ops, layers.Pooling, layers.AvgPooling)


def ref_plane_argmax(ref: R.layers.Pooling, g: Geom) -> np.ndarray:
    """The reference's window-local argmax as fastconv's index ih*W + iw in the (n, c) plane."""
    k = ref.arg_max.reshape(g.N, g.OH, g.OW, g.C).transpose(0, 3, 1, 2)
    oh = np.arange(g.OH, dtype=np.int64)[:, None]
    ow = np.arange(g.OW, dtype=np.int64)[None, :]
    ih = oh * g.stride - g.pad + k // g.FW
    iw = ow * g.stride - g.pad + k % g.FW
    return ih * g.W + iw


def draw_x_shape(data, shape):
    kind = data.draw(st.sampled_from(["tuple", "list", "ndarray", "np ints"]), label="x_shape type")
    if kind == "tuple":
        return tuple(shape)
    if kind == "list":
        return list(shape)
    if kind == "ndarray":
        return np.array(shape)
    return tuple(np.int64(s) for s in shape)


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@VALID
@given(data=st.data())
def test_maxpool_matches_reference(device, data):
    g = draw_pool_geom(data)
    dt, ddt = draw_dtypes(data, 2)
    x = farr(data, g.x_shape, dt, label="x")
    dout = farr(data, (g.N, g.C, g.OH, g.OW), ddt, label="dout")
    bwd_dt = np.result_type(ddt)

    ref = R.layers.Pooling(g.FH, g.FW, g.stride, g.pad)
    ref_out = ref.forward(f64(x))
    ref_arg = ref_plane_argmax(ref, g)
    ref_dx = ref.backward(f64(dout))

    xd, doutd = to_device(x, device), to_device(dout, device)
    out, argmax = map(to_host, ops.maxpool_forward(xd, g.FH, g.FW, g.stride, g.pad))
    assert out.dtype == dt and argmax.dtype == np.int32 and argmax.shape == out.shape
    np.testing.assert_array_equal(out, ref_out.astype(dt), err_msg="maxpool_forward out")  # a max: exact
    np.testing.assert_array_equal(argmax, ref_arg, err_msg="maxpool_forward argmax (first max, row-major)")
    ran("ops.maxpool_forward")

    # backward with the forward's argmax (in any int dtype and layout), or with arbitrary in-range indices
    if data.draw(st.booleans(), label="argmax from forward"):
        am = relayout(data, argmax.astype(data.draw(st.sampled_from([np.int32, np.int64, np.intp]))))
        want = ref_dx
    else:
        hw = g.H * g.W
        adt = data.draw(
            st.sampled_from([t for t in INT_DTYPES if np.iinfo(t).max >= hw - 1]), label="argmax dtype"
        )
        am = data.draw(hnp.arrays(adt, out.shape, elements=st.integers(0, hw - 1)), label="argmax")
        am = relayout(data, am)
        want = np.zeros((g.N * g.C, hw))
        planes = np.repeat(np.arange(g.N * g.C), g.OH * g.OW)
        np.add.at(want, (planes, np.asarray(am, dtype=np.int64).ravel()), f64(dout).ravel())
        want = want.reshape(g.x_shape)
    am = to_device(am, device)
    dx = ops.maxpool_backward(doutd, am, draw_x_shape(data, g.x_shape), g.FH, g.FW, g.stride, g.pad)
    assert_close(dx, want, bwd_dt, scale=_amax(dout) * g.FH * g.FW, dot=True, what="maxpool_backward")
    ran("ops.maxpool_backward")

    layer = layers.Pooling(g.FH, g.FW, g.stride, g.pad)
    np.testing.assert_array_equal(to_host(layer.forward(xd)), ref_out.astype(dt), err_msg="Pooling.forward")
    assert_close(
        layer.backward(doutd),
        ref_dx,
        bwd_dt,
        scale=_amax(dout) * g.FH * g.FW,
        dot=True,
        what="Pooling.backward",
    )
    ran("layers.Pooling")


@VALID
@given(data=st.data())
def test_avgpool_matches_reference(device, data):
    g = draw_pool_geom(data)
    dt, ddt = draw_dtypes(data, 2)
    x = farr(data, g.x_shape, dt, label="x")
    dout = farr(data, (g.N, g.C, g.OH, g.OW), ddt, label="dout")

    ref = R.layers.AvgPooling(g.FH, g.FW, g.stride, g.pad)
    ref_out = ref.forward(f64(x))
    ref_dx = ref.backward(f64(dout))
    mx, md = _amax(x), _amax(dout) * g.FH * g.FW

    x, dout = to_device(x, device), to_device(dout, device)
    assert_close(
        ops.avgpool_forward(x, g.FH, g.FW, g.stride, g.pad),
        ref_out,
        dt,
        scale=mx,
        dot=True,
        what="avgpool_forward",
    )
    dx = ops.avgpool_backward(dout, draw_x_shape(data, g.x_shape), g.FH, g.FW, g.stride, g.pad)
    assert_close(dx, ref_dx, ddt, scale=md, dot=True, what="avgpool_backward")
    ran("ops.avgpool_forward", "ops.avgpool_backward")

    layer = layers.AvgPooling(g.FH, g.FW, g.stride, g.pad)
    assert_close(layer.forward(x), ref_out, dt, scale=mx, dot=True, what="AvgPooling.forward")
    assert_close(layer.backward(dout), ref_dx, ddt, scale=md, dot=True, what="AvgPooling.backward")
    ran("layers.AvgPooling")


# ======================================================================================================
# agreement: activations (ops, layers, functions)


@VALID
@given(data=st.data())
def test_relu_matches_reference(device, data):
    # 1-D..4-D, empty sides included (0-D: see test_regression_zero_d_elementwise)
    shape = draw_any_shape(data)
    dt, odt, ddt = draw_dtypes(data, 3)
    x = farr(data, shape, dt, label="x")
    out_any = farr(data, shape, odt, label="out")  # relu_backward takes any forward output
    dout = farr(data, shape, ddt, label="dout")

    want = R.functions.relu(np.ascontiguousarray(x))  # in x's dtype: relu is exact
    xd = to_device(x, device)
    for name, f in (("ops.relu_forward", ops.relu_forward), ("functions.relu", functions.relu)):
        got = to_host(f(xd))
        assert got.dtype == dt and got.shape == shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        ran(name)

    ref = R.layers.Relu()
    ref.forward(f64(out_any))  # the mask out <= 0 is the mask x <= 0 for out = relu(x)
    want_dx = ref.backward(f64(dout))
    got = to_host(ops.relu_backward(to_device(dout, device), to_device(out_any, device)))
    assert got.dtype == np.result_type(ddt, odt)
    np.testing.assert_array_equal(got, want_dx.astype(got.dtype), err_msg="relu_backward")
    ran("ops.relu_backward")

    layer, ref = layers.Relu(), R.layers.Relu()
    np.testing.assert_array_equal(
        to_host(layer.forward(xd)), ref.forward(np.ascontiguousarray(x)), err_msg="Relu.forward"
    )
    np.testing.assert_array_equal(to_host(layer.mask), ref.mask, err_msg="Relu.mask")
    d = farr(data, shape, dt, label="layer dout")
    np.testing.assert_array_equal(
        to_host(layer.backward(to_device(d, device))),
        ref.backward(np.ascontiguousarray(d)),
        err_msg="Relu dx",
    )
    ran("layers.Relu")


@VALID
@given(data=st.data())
def test_sigmoid_matches_reference(device, data):
    shape = draw_any_shape(data)
    dt, odt, ddt = draw_dtypes(data, 3)
    x = farr(data, shape, dt, label="x")
    out_any = farr(data, shape, odt, lo=-1.0, hi=2.0, label="out")
    dout = farr(data, shape, ddt, label="dout")

    want = R.functions.sigmoid(f64(x))
    xd = to_device(x, device)
    for name, f in (("ops.sigmoid_forward", ops.sigmoid_forward), ("functions.sigmoid", functions.sigmoid)):
        assert_close(f(xd), want, dt, what=name)
        ran(name)

    O, D = f64(out_any), f64(dout)
    want_dx = D * (1.0 - O) * O
    bdt = np.result_type(ddt, odt)
    assert_close(
        ops.sigmoid_backward(to_device(dout, device), to_device(out_any, device)),
        want_dx,
        bdt,
        scale=_amax(np.abs(D) * (1 + np.abs(O)) * np.abs(O)),
        what="sigmoid_backward",
    )
    ran("ops.sigmoid_backward")

    layer, ref = layers.Sigmoid(), R.layers.Sigmoid()
    assert_close(layer.forward(xd), ref.forward(f64(x)), dt, what="Sigmoid.forward")
    d = farr(data, shape, dt, label="layer dout")
    assert_close(layer.backward(to_device(d, device)), ref.backward(f64(d)), dt, what="Sigmoid.backward")
    ran("layers.Sigmoid")


# ======================================================================================================
# agreement: affine (ops and layers.Affine, which flattens inputs of any ndim >= 2)


@VALID
@given(data=st.data())
def test_affine_matches_reference(device, data):
    N = data.draw(st.integers(1, 4), label="N")
    rest = draw_any_shape(data, 1, 3, 1, 4)
    D = int(np.prod(rest))
    H = data.draw(st.integers(1, 8), label="H")
    dx_, dw_, db_, dd_ = draw_dtypes(data, 4)
    x = farr(data, (N, *rest), dx_, label="x")
    W = farr(data, (D, H), dw_, label="W")
    b = farr(data, (H,), db_, label="b")
    dout = farr(data, (N, H), dd_, label="dout")
    fwd_dt, bwd_dt = np.result_type(x, W, b), np.result_type(x, W, dout)

    ref = R.layers.Affine(f64(W), f64(b))
    ref_out = ref.forward(f64(x))
    ref_dx = ref.backward(f64(dout))
    mag = R.layers.Affine(np.abs(f64(W)), np.abs(f64(b)))
    mag_out = mag.forward(np.abs(f64(x)))
    mag_dx = mag.backward(np.abs(f64(dout)))

    x, W, b, dout = (to_device(a, device) for a in (x, W, b, dout))
    x2 = x.reshape(N, D)
    assert_close(
        ops.affine_forward(x2, W, b), ref_out, fwd_dt, scale=_amax(mag_out), dot=True, what="affine_forward"
    )
    dx, dW, db = ops.affine_backward(x2, W, dout)
    assert_close(dx, ref_dx.reshape(N, D), bwd_dt, scale=_amax(mag_dx), dot=True, what="affine_backward dx")
    assert_close(dW, ref.dW, bwd_dt, scale=_amax(mag.dW), dot=True, what="affine_backward dW")
    assert_close(db, ref.db, bwd_dt, scale=_amax(mag.db), dot=True, what="affine_backward db")
    ran("ops.affine_forward", "ops.affine_backward")

    layer = layers.Affine(W, b)
    assert_close(layer.forward(x), ref_out, fwd_dt, scale=_amax(mag_out), dot=True, what="Affine.forward")
    assert_close(layer.backward(dout), ref_dx, bwd_dt, scale=_amax(mag_dx), dot=True, what="Affine.backward")
    assert_close(layer.dW, ref.dW, bwd_dt, scale=_amax(mag.dW), dot=True, what="Affine.dW")
    assert_close(layer.db, ref.db, bwd_dt, scale=_amax(mag.db), dot=True, what="Affine.db")
    ran("layers.Affine")


# ======================================================================================================
# agreement: softmax and the cross-entropy loss (ops, layers.SoftmaxWithLoss, functions)


def draw_x_scores(data, dtype):
    if data.draw(st.booleans(), label="1-D"):
        return farr(data, (data.draw(st.integers(1, 10), label="K"),), dtype, label="x")
    return farr(
        data,
        (data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(1, 10), label="K")),
        dtype,
        label="x",
    )


@VALID
@given(data=st.data())
def test_softmax_matches_reference(device, data):
    (dt,) = draw_dtypes(data, 1)
    x = draw_x_scores(data, dt)
    want = R.functions.softmax(f64(x))
    xd = to_device(x, device)
    for name, f in (("ops.softmax", ops.softmax), ("functions.softmax", functions.softmax)):
        assert_close(f(xd), want, dt, what=name)
        ran(name)


def draw_targets(data, shape):
    """Targets for scores of ``shape``: integer labels (any int dtype; 0-D, a Python int or (1,) for 1-D scores),
    or dense one-hot / probability targets of the scores' shape (float, int or bool).

    A 1-D x of one class with targets of shape (1,) is left out: fastconv reads them as labels, the reference as
    dense targets (see test_regression_softmax_ce_single_class_targets)."""
    n = 1 if len(shape) == 1 else shape[0]
    k = shape[-1]
    kinds = ["labels", "onehot", "prob", "onehot int", "onehot bool"]
    if len(shape) == 1 and k == 1:
        kinds = ["labels"]
    kind = data.draw(st.sampled_from(kinds), label="targets")
    ldt = data.draw(st.sampled_from(INT_DTYPES), label="label dtype")
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)), label="labels").astype(ldt)
    if kind == "labels":
        if len(shape) == 1:
            form = data.draw(
                st.sampled_from(["0-d", "python int", "(1,)"] if k > 1 else ["0-d", "python int"])
            )
            return {"0-d": labels.reshape(()), "python int": int(labels[0]), "(1,)": labels}[form]
        return relayout(data, labels)
    if kind == "prob":
        p = farr(
            data, (n, k), data.draw(st.sampled_from([F32, F64])), lo=0.0, hi=1.0, layout=False, label="t"
        )
        p = p / np.maximum(p.sum(axis=1, keepdims=True), p.dtype.type(1e-3))
        return relayout(data, p.reshape(shape))
    dtype = {"onehot": data.draw(st.sampled_from([F32, F64])), "onehot int": ldt, "onehot bool": np.bool_}[
        kind
    ]
    return relayout(data, np.eye(k, dtype=dtype)[labels.astype(np.int64)].reshape(shape))


@VALID
@given(data=st.data())
def test_softmax_cross_entropy_matches_reference(device, data):
    dt, ydt = draw_dtypes(data, 2)
    x = draw_x_scores(data, dt)
    t = draw_targets(data, x.shape)
    y_any = farr(data, x.shape, ydt, lo=0.0, hi=1.0, label="y")
    dout = data.draw(st.one_of(st.just(1.0), st.floats(-3, 3), st.integers(-3, 3)), label="dout")

    ref_y = R.functions.softmax(f64(x))
    ref_loss = R.functions.cross_entropy_error(ref_y, t)
    xd, td, y_anyd = (to_device(a, device) for a in (x, t, y_any))
    loss, y = ops.softmax_cross_entropy(xd, td)
    assert isinstance(loss, float)
    assert_close(np.asarray(loss, dtype=dt), ref_loss, dt, what="softmax_cross_entropy loss")
    assert_close(y, ref_y, dt, what="softmax_cross_entropy y")
    ran("ops.softmax_cross_entropy")

    ref = R.layers.SoftmaxWithLoss()
    ref.y, ref.t = f64(y_any), t
    want = ref.backward(dout)
    assert_close(
        ops.softmax_cross_entropy_backward(y_anyd, td, dout),
        want,
        ydt,
        scale=abs(dout),
        what="softmax_cross_entropy_backward",
    )
    ran("ops.softmax_cross_entropy_backward")

    layer, ref = layers.SoftmaxWithLoss(), R.layers.SoftmaxWithLoss()
    assert_close(
        np.asarray(to_host(layer.forward(xd, td)), dtype=dt),
        ref.forward(f64(x), t),
        dt,
        what="SoftmaxWithLoss loss",
    )
    assert_close(layer.backward(), ref.backward(), dt, what="SoftmaxWithLoss.backward()")
    assert_close(
        layer.backward(dout), ref.backward(dout), dt, scale=abs(dout), what="SoftmaxWithLoss.backward(dout)"
    )
    ran("layers.SoftmaxWithLoss")

    # the book's free functions: cross_entropy_error on fastconv's softmax, softmax_loss on the fused kernel
    assert_close(
        np.asarray(to_host(functions.cross_entropy_error(y, td)), dtype=dt),
        ref_loss,
        dt,
        what="cross_entropy_error",
    )
    assert_close(
        np.asarray(to_host(functions.softmax_loss(xd, td)), dtype=dt), ref_loss, dt, what="softmax_loss"
    )
    ran("functions.cross_entropy_error", "functions.softmax_loss")


# ======================================================================================================
# agreement: dropout (ops and layers.Dropout)


@VALID
@given(data=st.data())
def test_dropout_properties(device, data):
    shape = draw_any_shape(data)
    dt, ddt = draw_dtypes(data, 2)
    x = farr(data, shape, dt, label="x")
    x_saved = x.copy()
    dout = farr(data, shape, ddt, label="dout")
    ratio = data.draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0, exclude_max=True)), label="dropout_ratio")
    seed = data.draw(st.integers(0, 2**64 - 1), label="seed")

    xd = to_device(x, device)
    out, mask = map(to_host, ops.dropout_forward(xd, ratio, seed))
    assert out.dtype == dt and out.shape == shape
    assert mask.dtype == np.bool_ and mask.shape == shape
    np.testing.assert_array_equal(out, x * mask, err_msg="dropout_forward: out == x * mask")
    np.testing.assert_array_equal(to_host(xd), x_saved)
    # the seed alone decides the mask
    _, mask2 = ops.dropout_forward(to_device(np.ascontiguousarray(x), device), ratio, seed)
    np.testing.assert_array_equal(to_host(mask2), mask)
    if ratio == 0.0:
        assert mask.all(), "dropout_ratio 0 keeps every element"
    ran("ops.dropout_forward")

    ref = R.layers.Dropout(ratio)
    want = ref.forward(np.ascontiguousarray(x), train_flg=False)
    got = to_host(ops.dropout_infer(xd, ratio))
    assert got.dtype == dt
    np.testing.assert_array_equal(got, want, err_msg="dropout_infer == x * (1 - ratio)")
    ran("ops.dropout_infer")

    m = mask if data.draw(st.booleans(), label="forward mask") else data.draw(hnp.arrays(np.bool_, shape))
    m = relayout(data, m)
    got = to_host(ops.dropout_backward(to_device(dout, device), to_device(m, device)))
    assert got.dtype == ddt
    np.testing.assert_array_equal(got, dout * m, err_msg="dropout_backward == dout * mask")
    ran("ops.dropout_backward")

    lseed = data.draw(st.integers(0, 2**32), label="layer seed")
    layer, twin = layers.Dropout(ratio, seed=lseed), layers.Dropout(ratio, seed=lseed)
    lout = to_host(layer.forward(xd))
    lmask = to_host(layer.mask)
    assert lmask.dtype == np.bool_ and lmask.shape == shape
    np.testing.assert_array_equal(lout, x * lmask, err_msg="Dropout.forward")
    twin.forward(xd)
    np.testing.assert_array_equal(to_host(twin.mask), lmask, err_msg="Dropout: same seed, same mask")
    d = farr(data, shape, dt, label="layer dout")
    np.testing.assert_array_equal(
        to_host(layer.backward(to_device(d, device))), d * lmask, err_msg="Dropout.backward"
    )
    np.testing.assert_array_equal(
        to_host(layer.forward(xd, train_flg=False)), want, err_msg="Dropout.forward(train_flg=False)"
    )
    ran("layers.Dropout")


def test_dropout_keep_fraction(device):
    """Statistics, not per example: over 10**6 elements the kept fraction is 1 - ratio within 6 sigma."""
    n = 10**6
    for ratio in (0.0, 0.1, 0.5, 0.9, 0.999):
        for seed in (0, 1, 2**63 + 5):
            mask = to_host(ops.dropout_forward(to_device(np.ones(n, np.float32), device), ratio, seed)[1])
            p = 1 - ratio
            sigma = math.sqrt(max(p * (1 - p), 1e-12) / n)
            assert abs(mask.mean() - p) <= 6 * sigma + 1e-12, (ratio, seed, mask.mean())
    a = to_host(ops.dropout_forward(to_device(np.ones(n), device), 0.5, 1)[1])
    b = to_host(ops.dropout_forward(to_device(np.ones(n), device), 0.5, 2)[1])
    assert 0.45 < np.mean(a == b) < 0.55, "different seeds give independent masks"


# ======================================================================================================
# agreement: batch normalization (ops and layers.BatchNormalization)


def bn_scales(x2, std, gamma, beta):
    """Magnitudes the float rounding of x - mean reaches after division by std (see the module docstring)."""
    ax = max(1.0, _amax(x2))
    cond = ax / max(float(np.min(std)), 1e-300)
    return ax, cond, _amax(gamma) * cond + _amax(beta)


@VALID
@given(data=st.data())
def test_batchnorm_matches_reference(device, data):
    N = data.draw(st.integers(1, 4), label="N")
    rest = (
        draw_any_shape(data, 1, 3, 1, 3)
        if data.draw(st.booleans(), label="N-D")
        else (data.draw(st.integers(1, 8), label="D"),)
    )
    D = int(np.prod(rest))
    dt, pdt = draw_dtypes(data, 2)
    x = farr(data, (N, *rest), dt, label="x")
    x2 = x.reshape(N, D)
    gamma = farr(data, (D,), pdt, label="gamma")
    beta = farr(data, (D,), pdt, label="beta")
    rm0 = farr(data, (D,), pdt, layout=False, label="running_mean")
    rv0 = np.abs(farr(data, (D,), pdt, layout=False, label="running_var"))
    momentum = data.draw(st.floats(0.0, 1.0), label="momentum")
    dout = farr(data, (N, D), dt, label="dout")

    # training forward; the running statistics are updated in place, also through views
    ref = R.layers.BatchNormalization(f64(gamma), f64(beta), momentum, f64(rm0), f64(rv0))
    ref_out = ref.forward(f64(x2), train_flg=True)
    rm, rv = relayout(data, rm0.copy()), relayout(data, rv0.copy())
    xd, x2d, gammad, betad, rmd, rvd = (to_device(a, device) for a in (x, x2, gamma, beta, rm, rv))
    out, xc, xn, std = ops.batchnorm_forward_train(x2d, gammad, betad, rmd, rvd, momentum)
    ax, cond, sout = bn_scales(x2, ref.std, gamma, beta)
    assert_close(out, ref_out, dt, scale=sout, dot=True, what="bn train out")
    assert_close(xc, ref.xc, dt, scale=ax, dot=True, what="bn train xc")
    assert_close(xn, ref.xn, dt, scale=cond, dot=True, what="bn train xn")
    assert_close(std, ref.std, dt, scale=ax, dot=True, what="bn train std")
    # the statistics are computed in x's dtype and stored in the dtype of the arrays they are written back to
    low = F32 if F32 in (dt, pdt) else F64
    assert_close(
        rmd, ref.running_mean, pdt, scale=ax + _amax(rm0), dot=True, what="bn running_mean", compute_dtype=low
    )
    assert_close(
        rvd,
        ref.running_var,
        pdt,
        scale=ax * ax + _amax(rv0),
        dot=True,
        what="bn running_var",
        compute_dtype=low,
    )
    ran("ops.batchnorm_forward_train")

    # inference forward with the (old) running statistics
    ref_i = R.layers.BatchNormalization(f64(gamma), f64(beta), momentum, f64(rm0), f64(rv0))
    want = ref_i.forward(f64(x2), train_flg=False)
    s = _amax(gamma) * (ax + _amax(rm0)) / math.sqrt(float(np.min(f64(rv0))) + 1e-6) + _amax(beta)
    assert_close(
        ops.batchnorm_forward_infer(
            x2d, gammad, betad, to_device(relayout(data, rm0), device), to_device(relayout(data, rv0), device)
        ),
        want,
        dt,
        scale=s,
        dot=True,
        what="bn infer",
    )
    ran("ops.batchnorm_forward_infer")

    # backward from the reference's (rounded) forward values
    xc_in, xn_in, std_in = (ref.xc.astype(dt), ref.xn.astype(dt), ref.std.astype(dt))
    ref.xc, ref.xn, ref.std = f64(xc_in), f64(xn_in), f64(std_in)
    want_dx = ref.backward(f64(dout))
    g_d = _amax(gamma) * _amax(dout)
    s_dx = g_d / float(np.min(ref.std)) * (1 + _amax(ref.xn)) ** 2 * 2
    bdt = np.result_type(dt, pdt)
    dx, dgamma, dbeta = ops.batchnorm_backward(
        *(
            to_device(a, device)
            for a in (dout, relayout(data, xc_in), relayout(data, xn_in), std_in, relayout(data, gamma))
        )
    )
    assert_close(dx, want_dx, bdt, scale=s_dx, dot=True, what="bn backward dx")
    assert_close(dgamma, ref.dgamma, bdt, scale=N * _amax(dout) * _amax(xn_in), dot=True, what="bn dgamma")
    assert_close(dbeta, ref.dbeta, bdt, scale=N * _amax(dout), dot=True, what="bn dbeta")
    ran("ops.batchnorm_backward")

    # the layer (inputs of any ndim >= 2 flattened; running statistics start at zero) against the reference layer
    layer = layers.BatchNormalization(gammad, betad, momentum)
    ref_l = R.layers.BatchNormalization(f64(gamma), f64(beta), momentum)
    want = ref_l.forward(f64(x), train_flg=True)
    assert_close(
        layer.forward(xd, train_flg=True), want, dt, scale=sout, dot=True, what="BatchNormalization.forward"
    )
    d = farr(data, x.shape, dt, label="layer dout")
    want_dx = ref_l.backward(f64(d))
    s_dx = _amax(gamma) * _amax(d) / float(np.min(ref_l.std)) * (1 + _amax(ref_l.xn)) ** 2 * 2
    # (the layer's xc, xn, std are its own, in x's dtype)
    assert_close(
        layer.backward(to_device(d, device)),
        want_dx,
        bdt,
        scale=s_dx,
        dot=True,
        what="BatchNormalization.backward",
        compute_dtype=low,
    )
    # the layer's xn is its own, rounded in x's dtype from x - mean: that rounding reaches dgamma amplified by
    # 1/std (cond), as it reaches xn in the training forward above (the ops check takes xn as given instead)
    assert_close(
        layer.dgamma,
        ref_l.dgamma,
        bdt,
        scale=N * _amax(d) * max(_amax(ref_l.xn), cond),
        dot=True,
        what="dgamma",
        compute_dtype=low,
    )
    assert_close(layer.dbeta, ref_l.dbeta, bdt, scale=N * _amax(d), dot=True, what="dbeta", compute_dtype=low)
    s = _amax(gamma) * 2 * ax / math.sqrt(float(np.min(ref_l.running_var)) + 1e-6) + _amax(beta)
    assert_close(
        layer.forward(xd, train_flg=False),
        ref_l.forward(f64(x), train_flg=False),
        dt,
        scale=s,
        dot=True,
        what="BatchNormalization.forward(train_flg=False)",
    )
    ran("layers.BatchNormalization")


# ======================================================================================================
# NaN / Inf are data: they propagate as in NumPy (the reference), never raise


@NONFINITE
@given(data=st.data())
def test_nonfinite_elementwise(device, data):
    shape = draw_any_shape(data, 1, 3, 1, 4)
    (dt,) = draw_dtypes(data, 1)
    x = farr_special(data, shape, dt, label="x")
    dout = farr_special(data, shape, dt, label="dout")
    xc = np.ascontiguousarray(x)
    xd, doutd = to_device(x, device), to_device(dout, device)
    np.testing.assert_array_equal(
        to_host(ops.relu_forward(xd)), R.functions.relu(xc), err_msg="relu(NaN) is NaN"
    )
    ref = R.layers.Relu()
    ref.forward(xc)
    np.testing.assert_array_equal(
        to_host(ops.relu_backward(doutd, xd)),
        ref.backward(np.ascontiguousarray(dout)),
        err_msg="relu_backward",
    )
    assert_same_nonfinite(ops.sigmoid_forward(xd), R.functions.sigmoid(f64(x)), dt, what="sigmoid")
    out = R.functions.sigmoid(xc)
    with np.errstate(invalid="ignore"):
        want = f64(dout) * (1 - f64(out)) * f64(out)
    assert_same_nonfinite(
        ops.sigmoid_backward(doutd, to_device(out, device)), want, dt, what="sigmoid_backward"
    )
    y, mask = ops.dropout_forward(xd, 0.5, data.draw(st.integers(0, 2**64 - 1)))
    mask_h = to_host(mask)
    with np.errstate(invalid="ignore"):
        want_y, want_dx = x * mask_h, dout * mask_h
    np.testing.assert_array_equal(to_host(y), want_y, err_msg="dropout_forward: NaN * False is NaN in NumPy")
    np.testing.assert_array_equal(
        to_host(ops.dropout_backward(doutd, mask)), want_dx, err_msg="dropout_backward"
    )
    ran("nonfinite: elementwise")


def _ieee_matmul(a, b):
    """a @ b in float64 by plain loops (np.einsum without BLAS): IEEE NaN / Inf semantics for the oracle."""
    return np.einsum("ik,kj->ij", a, b, optimize=False)


@NONFINITE
@given(data=st.data())
def test_nonfinite_conv_affine_gemm(device, data):
    g = draw_conv_geom(data, fn=True, max_hw=6)
    (dt,) = draw_dtypes(data, 1)
    special = data.draw(st.sampled_from(["x", "W", "b", "all"]), label="NaN/Inf in")
    pick = lambda name, shape: (farr_special if special in (name, "all") else farr)(
        data, shape, dt, label=name
    )
    x = pick("x", g.x_shape)
    W = pick("W", (g.FN, g.C, g.FH, g.FW))
    b = pick("b", (g.FN,))
    ref = R.layers.Convolution(f64(W), f64(b), g.stride, g.pad)
    with np.errstate(invalid="ignore"):
        want = ref.forward(f64(x))  # explicit zero padding: Inf * padding is NaN, as in the reference
    xd, Wd, bd = (to_device(a, device) for a in (x, W, b))
    assert_same_nonfinite(
        ops.conv_forward(xd, Wd, bd, g.stride, g.pad), want, dt, scale=1e3, what="conv_forward"
    )

    x2 = x.reshape(g.N, -1)
    Wa = pick("W", (x2.shape[1], g.FN))
    x2d, Wad = to_device(x2, device), to_device(Wa, device)
    with np.errstate(invalid="ignore"):
        want = _ieee_matmul(f64(x2), f64(Wa)) + f64(b)
    assert_same_nonfinite(ops.affine_forward(x2d, Wad, bd), want, dt, scale=1e3, what="affine_forward")
    with np.errstate(invalid="ignore"):
        want = _ieee_matmul(f64(Wa).T, f64(x2).T)
    assert_same_nonfinite(ops.gemm(Wad, x2d, trans_a=True, trans_b=True), want, dt, scale=1e3, what="gemm")
    ran("nonfinite: conv/affine/gemm")


@NONFINITE
@given(data=st.data())
def test_nonfinite_pooling(device, data):
    g = draw_pool_geom(data, max_hw=6)
    (dt,) = draw_dtypes(data, 1)
    x = farr_special(data, g.x_shape, dt, label="x")
    ref = R.layers.Pooling(g.FH, g.FW, g.stride, g.pad)
    with np.errstate(invalid="ignore"):
        want = ref.forward(f64(x))
    xd = to_device(x, device)
    out, argmax = map(to_host, ops.maxpool_forward(xd, g.FH, g.FW, g.stride, g.pad))
    assert_same_nonfinite(out, want, dt, what="maxpool_forward (NaN wins, as np.max)")
    # -Inf ties with the reference's -Inf padding, so only windows whose max is not -Inf fix the argmax
    ok = ~np.isneginf(want)
    np.testing.assert_array_equal(
        argmax[ok], ref_plane_argmax(ref, g)[ok], err_msg="maxpool argmax: first NaN/max"
    )
    ref = R.layers.AvgPooling(g.FH, g.FW, g.stride, g.pad)
    with np.errstate(invalid="ignore"):
        want = ref.forward(f64(x))
    assert_same_nonfinite(
        ops.avgpool_forward(xd, g.FH, g.FW, g.stride, g.pad), want, dt, scale=10, what="avgpool_forward"
    )
    ran("nonfinite: pooling")


@NONFINITE
@given(data=st.data())
def test_nonfinite_softmax_loss_batchnorm(device, data):
    (dt,) = draw_dtypes(data, 1)
    N, K = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(2, 6), label="K")
    x = farr_special(data, (N, K), dt, label="x")
    t = data.draw(hnp.arrays(np.int64, (N,), elements=st.integers(0, K - 1)), label="t")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        want_y = R.functions.softmax(f64(x))
        want_loss = R.functions.cross_entropy_error(want_y, t)
    xd = to_device(x, device)
    assert_same_nonfinite(ops.softmax(xd), want_y, dt, what="softmax")
    loss, y = ops.softmax_cross_entropy(xd, to_device(t, device))
    assert_same_nonfinite(y, want_y, dt, what="softmax_cross_entropy y")
    assert_same_nonfinite(
        np.float64(to_host(loss)), want_loss, dt, scale=20, what="softmax_cross_entropy loss"
    )
    gamma, beta = np.ones(K, dt), np.zeros(K, dt)
    ref = R.layers.BatchNormalization(f64(gamma), f64(beta), 0.9, np.zeros(K), np.ones(K))
    with np.errstate(invalid="ignore", over="ignore"):
        want = ref.forward(f64(x))
    args = (gamma, beta, np.zeros(K, dt), np.ones(K, dt))
    out = to_host(ops.batchnorm_forward_train(xd, *(to_device(a, device) for a in args))[0])
    assert np.array_equal(np.isnan(out), np.isnan(want)), f"batchnorm NaN pattern\n{out}\n{want}"
    ran("nonfinite: softmax/loss/batchnorm")


# ======================================================================================================
# invalid calls: ValueError / TypeError naming the argument, never a crash, hang or result


class Case:
    """One invalid call: what it is, the call, the exception type(s) it must raise and the argument names its
    message may start with. ``call(put)`` makes the call with its arrays passed through ``put``, which puts
    them on the device under test (``check_invalid``): cases are drawn before the device is known."""

    def __init__(self, desc, call, exc, *leads):
        self.desc, self.call, self.exc, self.leads = desc, call, exc, leads

    def __repr__(self):
        exc = self.exc.__name__ if isinstance(self.exc, type) else "/".join(e.__name__ for e in self.exc)
        return f"<{self.desc}: expect {exc} naming {'|'.join(self.leads)}>"


def check_invalid(case: Case, family: str, device: str) -> None:
    try:
        res = case.call(lambda v: on_device(v, device))
    except case.exc as e:
        msg = str(e)
        lead = "|".join(re.escape(n) for n in case.leads)
        assert re.match(rf"(?:{lead})(?![A-Za-z0-9_])", msg), (
            f"{case!r}: {type(e).__name__} message does not start with the argument name: {msg!r}"
        )
        return
    except Exception as e:
        raise AssertionError(f"{case!r}: got {type(e).__name__}: {e}") from e
    raise AssertionError(f"{case!r}: no exception, returned {type(res).__name__}")


def z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype)


def o(*shape, dtype=np.float64):
    return np.ones(shape, dtype)


@st.composite
def small_conv(draw):
    N, C, FN = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W, pad, stride = (
        draw(st.integers(1, 6)),
        draw(st.integers(1, 6)),
        draw(st.integers(0, 2)),
        draw(st.integers(1, 3)),
    )
    FH, FW = draw(st.integers(1, min(4, H + 2 * pad))), draw(st.integers(1, min(4, W + 2 * pad)))
    return Geom(N, C, H, W, FH, FW, stride, pad, FN)


@st.composite
def small_pool(draw):
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.integers(0, min(PH, PW) - 1))
    H, W = draw(st.integers(max(1, PH - 2 * pad), 6)), draw(st.integers(max(1, PW - 2 * pad), 6))
    return Geom(N, C, H, W, PH, PW, draw(st.integers(1, 3)), pad)


DT = st.sampled_from([F32, F64])


# --------------------------------------------------------------------------------------------------------------
# the API as "sites": a valid call built from drawn small arguments, with one argument replaceable


def conv_args(g, dt):
    return {
        "x": o(*g.x_shape, dtype=dt),
        "W": o(g.FN, g.C, g.FH, g.FW, dtype=dt),
        "b": o(g.FN, dtype=dt),
        "dout": o(g.N, g.FN, g.OH, g.OW, dtype=dt),
        "stride": g.stride,
        "pad": g.pad,
    }


def pool_args(g, dt):
    return {
        "x": o(*g.x_shape, dtype=dt),
        "dout": o(g.N, g.C, g.OH, g.OW, dtype=dt),
        "argmax": np.zeros((g.N, g.C, g.OH, g.OW), np.int32),
        "x_shape": g.x_shape,
        "pool_h": g.FH,
        "pool_w": g.FW,
        "stride": g.stride,
        "pad": g.pad,
    }


def _layer_fwd_bwd(layer, x, dout):
    layer.forward(x)
    return layer.backward(dout)


def _bn_layer(a):
    return layers.BatchNormalization(
        a["gamma"], a["beta"], a["momentum"], a.get("running_mean"), a.get("running_var")
    )


def _dropout_fwd_bwd(a):
    layer = layers.Dropout(a["dropout_ratio"], seed=1)
    layer.forward(a["x"])
    return layer.backward(a["dout"])


def _dropout_backward_with_mask(x, dout, mask):
    layer = layers.Dropout(0.5, seed=0)
    layer.forward(x)
    layer.mask = mask
    return layer.backward(dout)


def _sce_layer_bwd(a):
    layer = layers.SoftmaxWithLoss()
    layer.forward(a["x"], a["t"])
    return layer.backward(a["dout"])


@st.composite
def args_conv(draw):
    return conv_args(draw(small_conv()), draw(DT))


@st.composite
def args_pool(draw):
    return pool_args(draw(small_pool()), draw(DT))


@st.composite
def args_im2col(draw):
    g, dt = draw(small_conv()), draw(DT)
    return {
        "input_data": o(*g.x_shape, dtype=dt),
        "col": o(g.N * g.OH * g.OW, g.C * g.FH * g.FW, dtype=dt),
        "input_shape": g.x_shape,
        "filter_h": g.FH,
        "filter_w": g.FW,
        "stride": g.stride,
        "pad": g.pad,
    }


@st.composite
def args_gemm(draw):
    M, K, N, dt = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(DT)
    return {
        "a": o(M, K, dtype=dt),
        "b": o(K, N, dtype=dt),
        "out": z(M, N, dtype=dt),
        "alpha": 1.0,
        "beta": 0.5,
    }


@st.composite
def args_elem(draw):
    shape, dt = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))), draw(DT)
    return {
        "x": o(*shape, dtype=dt),
        "dout": o(*shape, dtype=dt),
        "out": o(*shape, dtype=dt),
        "mask": np.ones(shape, bool),
        "dropout_ratio": 0.5,
        "seed": 3,
    }


@st.composite
def args_affine(draw):
    N, D, H, dt = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(DT)
    return {"x": o(N, D, dtype=dt), "W": o(D, H, dtype=dt), "b": o(H, dtype=dt), "dout": o(N, H, dtype=dt)}


@st.composite
def args_softmax(draw):
    N, K, dt = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(DT)
    return {"x": o(N, K, dtype=dt), "y": o(N, K, dtype=dt) / K, "t": np.arange(N) % K, "dout": 1.0}


@st.composite
def args_bn(draw):
    N, D, dt = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(DT)
    return {
        "x": o(N, D, dtype=dt),
        "gamma": o(D, dtype=dt),
        "beta": z(D, dtype=dt),
        "running_mean": z(D, dtype=dt),
        "running_var": o(D, dtype=dt),
        "momentum": 0.9,
        "eps": 1e-6,
        "dout": o(N, D, dtype=dt),
        "xc": z(N, D, dtype=dt),
        "xn": z(N, D, dtype=dt),
        "std": o(D, dtype=dt),
    }


# name -> (argument strategy, call, the float-array arguments a wrong dtype is put into)
SITES = {
    "ops.gemm": (
        args_gemm(),
        lambda a: ops.gemm(a["a"], a["b"], alpha=a["alpha"], beta=a["beta"], out=a["out"]),
        ("a", "b"),
    ),
    "ops.im2col": (
        args_im2col(),
        lambda a: ops.im2col(a["input_data"], a["filter_h"], a["filter_w"], a["stride"], a["pad"]),
        ("input_data",),
    ),
    "util.im2col": (
        args_im2col(),
        lambda a: util.im2col(a["input_data"], a["filter_h"], a["filter_w"], a["stride"], a["pad"]),
        ("input_data",),
    ),
    "ops.col2im": (
        args_im2col(),
        lambda a: ops.col2im(a["col"], a["input_shape"], a["filter_h"], a["filter_w"], a["stride"], a["pad"]),
        ("col",),
    ),
    "util.col2im": (
        args_im2col(),
        lambda a: util.col2im(
            a["col"], a["input_shape"], a["filter_h"], a["filter_w"], a["stride"], a["pad"]
        ),
        ("col",),
    ),
    "ops.conv_forward": (
        args_conv(),
        lambda a: ops.conv_forward(a["x"], a["W"], a["b"], a["stride"], a["pad"]),
        ("x", "W", "b"),
    ),
    "ops.conv_backward": (
        args_conv(),
        lambda a: ops.conv_backward(a["x"], a["W"], a["dout"], a["stride"], a["pad"]),
        ("x", "W", "dout"),
    ),
    "layers.Convolution": (
        args_conv(),
        lambda a: _layer_fwd_bwd(
            layers.Convolution(a["W"], a["b"], a["stride"], a["pad"]), a["x"], a["dout"]
        ),
        ("x", "W", "b", "dout"),
    ),
    "ops.maxpool_forward": (
        args_pool(),
        lambda a: ops.maxpool_forward(a["x"], a["pool_h"], a["pool_w"], a["stride"], a["pad"]),
        ("x",),
    ),
    "ops.maxpool_backward": (
        args_pool(),
        lambda a: ops.maxpool_backward(
            a["dout"], a["argmax"], a["x_shape"], a["pool_h"], a["pool_w"], a["stride"], a["pad"]
        ),
        ("dout",),
    ),
    "ops.avgpool_forward": (
        args_pool(),
        lambda a: ops.avgpool_forward(a["x"], a["pool_h"], a["pool_w"], a["stride"], a["pad"]),
        ("x",),
    ),
    "ops.avgpool_backward": (
        args_pool(),
        lambda a: ops.avgpool_backward(
            a["dout"], a["x_shape"], a["pool_h"], a["pool_w"], a["stride"], a["pad"]
        ),
        ("dout",),
    ),
    "layers.Pooling": (
        args_pool(),
        lambda a: _layer_fwd_bwd(
            layers.Pooling(a["pool_h"], a["pool_w"], a["stride"], a["pad"]), a["x"], a["dout"]
        ),
        ("x", "dout"),
    ),
    "layers.AvgPooling": (
        args_pool(),
        lambda a: _layer_fwd_bwd(
            layers.AvgPooling(a["pool_h"], a["pool_w"], a["stride"], a["pad"]), a["x"], a["dout"]
        ),
        ("x", "dout"),
    ),
    "ops.relu_forward": (args_elem(), lambda a: ops.relu_forward(a["x"]), ("x",)),
    "ops.relu_backward": (args_elem(), lambda a: ops.relu_backward(a["dout"], a["out"]), ("dout", "out")),
    "ops.sigmoid_forward": (args_elem(), lambda a: ops.sigmoid_forward(a["x"]), ("x",)),
    "ops.sigmoid_backward": (
        args_elem(),
        lambda a: ops.sigmoid_backward(a["dout"], a["out"]),
        ("dout", "out"),
    ),
    "functions.relu": (args_elem(), lambda a: functions.relu(a["x"]), ("x",)),
    "functions.sigmoid": (args_elem(), lambda a: functions.sigmoid(a["x"]), ("x",)),
    "layers.Relu": (args_elem(), lambda a: _layer_fwd_bwd(layers.Relu(), a["x"], a["dout"]), ("x", "dout")),
    "layers.Sigmoid": (
        args_elem(),
        lambda a: _layer_fwd_bwd(layers.Sigmoid(), a["x"], a["dout"]),
        ("x", "dout"),
    ),
    "ops.dropout_forward": (
        args_elem(),
        lambda a: ops.dropout_forward(a["x"], a["dropout_ratio"], a["seed"]),
        ("x",),
    ),
    "ops.dropout_infer": (args_elem(), lambda a: ops.dropout_infer(a["x"], a["dropout_ratio"]), ("x",)),
    "ops.dropout_backward": (args_elem(), lambda a: ops.dropout_backward(a["dout"], a["mask"]), ("dout",)),
    "layers.Dropout": (args_elem(), _dropout_fwd_bwd, ("x", "dout")),
    "layers.Dropout infer": (
        args_elem(),
        lambda a: layers.Dropout(a["dropout_ratio"]).forward(a["x"], False),
        ("x",),
    ),
    "ops.affine_forward": (
        args_affine(),
        lambda a: ops.affine_forward(a["x"], a["W"], a["b"]),
        ("x", "W", "b"),
    ),
    "ops.affine_backward": (
        args_affine(),
        lambda a: ops.affine_backward(a["x"], a["W"], a["dout"]),
        ("x", "W", "dout"),
    ),
    "layers.Affine": (
        args_affine(),
        lambda a: _layer_fwd_bwd(layers.Affine(a["W"], a["b"]), a["x"], a["dout"]),
        ("x", "W", "b", "dout"),
    ),
    "ops.softmax": (args_softmax(), lambda a: ops.softmax(a["x"]), ("x",)),
    "functions.softmax": (args_softmax(), lambda a: functions.softmax(a["x"]), ("x",)),
    "ops.softmax_cross_entropy": (
        args_softmax(),
        lambda a: ops.softmax_cross_entropy(a["x"], a["t"]),
        ("x",),
    ),
    "functions.softmax_loss": (args_softmax(), lambda a: functions.softmax_loss(a["x"], a["t"]), ("x",)),
    "ops.softmax_cross_entropy_backward": (
        args_softmax(),
        lambda a: ops.softmax_cross_entropy_backward(a["y"], a["t"], a["dout"]),
        ("y",),
    ),
    "layers.SoftmaxWithLoss": (args_softmax(), _sce_layer_bwd, ("x",)),
    "ops.batchnorm_forward_train": (
        args_bn(),
        lambda a: ops.batchnorm_forward_train(
            a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"], a["momentum"], a["eps"]
        ),
        ("x", "gamma", "beta", "running_mean", "running_var"),
    ),
    "ops.batchnorm_forward_infer": (
        args_bn(),
        lambda a: ops.batchnorm_forward_infer(
            a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"], a["eps"]
        ),
        ("x", "gamma", "beta", "running_mean", "running_var"),
    ),
    "ops.batchnorm_backward": (
        args_bn(),
        lambda a: ops.batchnorm_backward(a["dout"], a["xc"], a["xn"], a["std"], a["gamma"]),
        ("dout", "xc", "xn", "std", "gamma"),
    ),
    "layers.BatchNormalization": (
        args_bn(),
        lambda a: _layer_fwd_bwd(_bn_layer(a), a["x"], a["dout"]),
        ("x", "gamma", "beta", "running_mean", "running_var", "dout"),
    ),
    "layers.BatchNormalization infer": (
        args_bn(),
        lambda a: _bn_layer(a).forward(a["x"], train_flg=False),
        ("x", "gamma", "beta", "running_mean", "running_var"),
    ),
}


def _bad_dtype_list():
    out = [
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.bool_,
        np.complex64,
        np.complex128,
        np.float16,
        object,
        "U3",
        "S3",
        "datetime64[s]",
        "timedelta64[s]",
        [("a", "f8")],
        "V8",
    ]
    if np.dtype(np.longdouble) not in (F32, F64):
        out.append(np.longdouble)
    return [np.dtype(d) for d in out]


BAD_DTYPES = _bad_dtype_list()
NOT_ARRAYS = [
    None,
    "abc",
    {"a": 1.0},
    {1.0, 2.0},
    [[1.0], [1.0, 2.0]],
    b"xyz",
    (lambda: 0),
    [1, 2, 3],
    True,
    3,
    2j,
]


@st.composite
def bad_array(draw, shape, allowed_kinds="", exclude=()):
    """An array of ``shape`` whose dtype is not float32/float64 (nor of ``allowed_kinds``, nor in ``exclude``)."""
    dt = draw(st.sampled_from([d for d in BAD_DTYPES if d.kind not in allowed_kinds and d not in exclude]))
    return np.zeros(shape, dt), f"dtype {dt}"


# Every op of SITES has float16 / bfloat16 kernels (tests/test_half.py): float16 is a valid dtype there and is
# not drawn as a bad one.
HALF_OK = (np.dtype(np.float16),)


# --------------------------------------------------------------------------------------------------------------
# family 1: dtypes and non-arrays (TypeError)


@st.composite
def dtype_cases(draw):
    site = draw(st.sampled_from(sorted(SITES)))
    strat, call, float_args = SITES[site]
    a = draw(strat)
    arg = draw(st.sampled_from(float_args))
    if (
        draw(st.integers(0, 4)) == 0 and site != "layers.BatchNormalization"
    ):  # see test_regression_batchnorm_layer...
        # (a convolution's b may be None: no bias)
        bad = draw(st.sampled_from([v for v in NOT_ARRAYS if not (v is None and arg == "b" and "onv" in site)]))
        what, exc = f"{type(bad).__name__} {bad!r}"[:40], (TypeError, ValueError)  # also of the wrong shape
    else:
        bad, what = draw(bad_array(np.shape(a[arg]), exclude=HALF_OK))
        exc = TypeError
    a[arg] = bad
    return Case(f"{site}({arg}={what})", lambda put: call(put(a)), exc, arg)


LABEL_SITES = {
    "ops.softmax_cross_entropy": lambda x, t: ops.softmax_cross_entropy(x, t),
    "ops.softmax_cross_entropy_backward": lambda x, t: ops.softmax_cross_entropy_backward(x / x.shape[-1], t),
    "layers.SoftmaxWithLoss": lambda x, t: layers.SoftmaxWithLoss().forward(x, t),
    "functions.softmax_loss": lambda x, t: functions.softmax_loss(x, t),
}


@st.composite
def label_dtype_cases(draw):
    site = draw(st.sampled_from(sorted(LABEL_SITES)))
    N, K = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    x = o(N, K, dtype=draw(DT))
    # (dense float16 targets are valid since the softmax losses have float16 kernels: tests/test_half.py)
    kind = draw(st.sampled_from(["float labels", "bool labels", "other"]))
    if kind == "float labels":
        t = draw(
            hnp.arrays(
                draw(st.sampled_from([F32, F64, np.dtype(np.float16)])),
                (N,),
                elements=st.integers(0, K - 1).map(float),
            )
        )
    elif kind == "bool labels":
        t = np.zeros(N, bool)
    else:
        t, _ = draw(bad_array(draw(st.sampled_from([(N,), (N, K)])), allowed_kinds="iubf"))
    return Case(
        f"{site}(t={kind} {t.dtype} {t.shape})", lambda put: LABEL_SITES[site](put(x), put(t)), TypeError, "t"
    )


@st.composite
def special_dtype_cases(draw):
    """argmax (integer), mask (bool) and gemm's out (ndarray of the result dtype)."""
    kind = draw(st.sampled_from(["argmax", "mask", "mask layer", "out"]))
    if kind == "argmax":
        a = draw(args_pool())
        bad, what = draw(bad_array(a["argmax"].shape, allowed_kinds="iu"))
        if draw(st.integers(0, 3)) == 0:
            bad, what = draw(st.sampled_from([None, "abc", [[1.5]], 2.5])), "non-array"
        return Case(
            f"ops.maxpool_backward(argmax={what})",
            lambda put: ops.maxpool_backward(
                put(a["dout"]), put(bad), a["x_shape"], a["pool_h"], a["pool_w"], a["stride"], a["pad"]
            ),
            TypeError,
            "argmax",
        )
    if kind.startswith("mask"):
        a = draw(args_elem())
        bad, what = draw(bad_array(a["dout"].shape, allowed_kinds="b"))
        if draw(st.integers(0, 3)) == 0:
            bad, what = draw(st.sampled_from([None, "abc", [1.0], 1])), "non-array"
        if kind == "mask":
            return Case(
                f"ops.dropout_backward(mask={what})",
                lambda put: ops.dropout_backward(put(a["dout"]), put(bad)),
                TypeError,
                "mask",
            )
        return Case(
            f"layers.Dropout.backward(mask={what})",
            lambda put: _dropout_backward_with_mask(put(a["x"]), put(a["dout"]), put(bad)),
            TypeError,
            "mask",
        )
    a = draw(args_gemm())
    rd = a["a"].dtype
    choice = draw(st.sampled_from(["dtype", "other float", "non-array"]))
    if choice == "dtype":
        bad, what = draw(bad_array(a["out"].shape))
    elif choice == "other float":
        bad, what = np.zeros(a["out"].shape, F32 if rd == F64 else F64), "other float dtype"
    else:
        bad, what = draw(st.sampled_from([[[0.0]], "abc", 1.0, (0.0,)])), "non-array"
    return Case(
        f"ops.gemm(out={what})",
        lambda put: ops.gemm(put(a["a"]), put(a["b"]), beta=1.0, out=put(bad)),
        TypeError,
        "out",
    )


# --------------------------------------------------------------------------------------------------------------
# family 2: shapes -- wrong ndim, empty, mismatched (ValueError)


@st.composite
def wrong_ndim_shape(draw, ok_ndims, max_side=3):
    ndim = draw(st.integers(0, 5).filter(lambda n: n not in ok_ndims))
    return tuple(draw(st.integers(1, max_side)) for _ in range(ndim))


@st.composite
def empty_shape(draw, ndim):
    shape = [draw(st.integers(0, 3)) for _ in range(ndim)]
    shape[draw(st.integers(0, ndim - 1))] = 0
    return tuple(shape)


@st.composite
def other_shape(draw, shape, min_side=1):
    """A shape of the same ndim as ``shape`` that differs from it."""
    return draw(
        st.lists(st.integers(min_side, 4), min_size=len(shape), max_size=len(shape))
        .map(tuple)
        .filter(lambda s: s != tuple(shape))
    )


@st.composite
def shape_cases(draw):
    family = draw(
        st.sampled_from(["conv", "im2col", "pool", "elem", "affine", "softmax", "bn", "gemm", "dropout"])
    )
    dt = draw(DT)
    V = ValueError
    if family == "conv":
        g = draw(small_conv())
        a = conv_args(g, dt)
        site = draw(st.sampled_from(["ops.conv_forward", "ops.conv_backward", "layers.Convolution"]))
        call = SITES[site][1]
        kind = draw(st.sampled_from(["x ndim", "W ndim", "x empty", "W empty", "channels", "b", "dout"]))
        if kind == "x ndim":
            a["x"], lead = o(*draw(wrong_ndim_shape({4})), dtype=dt), "x"
        elif kind == "W ndim":
            a["W"], lead = o(*draw(wrong_ndim_shape({4})), dtype=dt), "W"
        elif kind == "x empty":
            a["x"], lead = z(*draw(empty_shape(4)), dtype=dt), "x"
        elif kind == "W empty":
            a["W"], lead = z(*draw(empty_shape(4)), dtype=dt), "W"
        elif kind == "channels":
            C2 = draw(st.integers(1, 4).filter(lambda c: c != g.C))
            a["W"], lead = o(g.FN, C2, g.FH, g.FW, dtype=dt), "W"
        elif kind == "b":
            if site == "ops.conv_backward":
                site, call = "ops.conv_forward", SITES["ops.conv_forward"][1]
            shape = draw(st.one_of(other_shape((g.FN,), 0), wrong_ndim_shape({1})))
            a["b"], lead = o(*shape, dtype=dt), "b"
        else:
            if site == "ops.conv_forward":
                site, call = "ops.conv_backward", SITES["ops.conv_backward"][1]
            shape = draw(st.one_of(other_shape(a["dout"].shape, 0), wrong_ndim_shape({4})))
            a["dout"], lead = o(*shape, dtype=dt), "dout"
        return Case(f"{site}({kind})", lambda put: call(put(a)), V, lead)
    if family == "im2col":
        g = draw(small_conv())
        site = draw(st.sampled_from(["ops.im2col", "util.im2col", "ops.col2im", "util.col2im"]))
        a = draw(args_im2col())
        call = SITES[site][1]
        if site.endswith("im2col"):
            kind = draw(st.sampled_from(["ndim", "empty"]))
            shape = draw(wrong_ndim_shape({4}) if kind == "ndim" else empty_shape(4))
            a["input_data"] = o(*shape, dtype=dt)
            return Case(f"{site}(input_data {kind} {shape})", lambda put: call(put(a)), V, "input_data")
        kind = draw(st.sampled_from(["col ndim", "col shape", "input_shape length", "input_shape < 1"]))
        if kind == "col ndim":
            a["col"], lead = o(*draw(wrong_ndim_shape({2})), dtype=dt), "col"
        elif kind == "col shape":
            a["col"], lead = z(*draw(other_shape(a["col"].shape, 0)), dtype=dt), "col"
        elif kind == "input_shape length":
            a["input_shape"], lead = (
                tuple(draw(st.lists(st.integers(1, 4), max_size=6).filter(lambda s: len(s) != 4))),
                "input_shape",
            )
        else:
            s = list(a["input_shape"])
            s[draw(st.integers(0, 3))] = draw(st.integers(-(2**70), 0))
            a["input_shape"], lead = tuple(s), "input_shape"
        return Case(f"{site}({kind})", lambda put: call(put(a)), V, lead)
    if family == "pool":
        g = draw(small_pool())
        a = pool_args(g, dt)
        kind = draw(
            st.sampled_from(
                [
                    "x ndim",
                    "x empty",
                    "dout ndim",
                    "dout shape",
                    "argmax shape",
                    "argmax range",
                    "x_shape length",
                    "x_shape < 1",
                    "layer dout",
                ]
            )
        )
        fwd = draw(
            st.sampled_from(
                ["ops.maxpool_forward", "ops.avgpool_forward", "layers.Pooling", "layers.AvgPooling"]
            )
        )
        bwd = draw(st.sampled_from(["ops.maxpool_backward", "ops.avgpool_backward"]))
        if kind in ("x ndim", "x empty"):
            shape = draw(wrong_ndim_shape({4}) if kind == "x ndim" else empty_shape(4))
            a["x"] = o(*shape, dtype=dt)
            return Case(f"{fwd}({kind} {shape})", lambda put: SITES[fwd][1](put(a)), V, "x")
        if kind == "layer dout":
            site = draw(st.sampled_from(["layers.Pooling", "layers.AvgPooling"]))
            a["dout"] = o(*draw(st.one_of(other_shape(a["dout"].shape, 0), wrong_ndim_shape({4}))), dtype=dt)
            return Case(
                f"{site}.backward(dout {a['dout'].shape})", lambda put: SITES[site][1](put(a)), V, "dout"
            )
        if kind.startswith("dout"):
            shape = draw(wrong_ndim_shape({4}) if kind == "dout ndim" else other_shape(a["dout"].shape, 0))
            a["dout"] = o(*shape, dtype=dt)
            a["argmax"] = np.zeros(shape, np.int32)
            return Case(f"{bwd}({kind} {shape})", lambda put: SITES[bwd][1](put(a)), V, "dout")
        if kind.startswith("x_shape"):
            if kind == "x_shape length":
                a["x_shape"] = tuple(
                    draw(st.lists(st.integers(1, 4), max_size=6).filter(lambda s: len(s) != 4))
                )
            else:
                s = list(g.x_shape)
                s[draw(st.integers(0, 3))] = draw(st.integers(-(2**70), 0))
                a["x_shape"] = tuple(s)
            return Case(f"{bwd}({kind} {a['x_shape']})", lambda put: SITES[bwd][1](put(a)), V, "x_shape")
        if kind == "argmax shape":
            a["argmax"] = np.zeros(
                draw(st.one_of(other_shape(a["dout"].shape, 0), wrong_ndim_shape({4}))), np.int32
            )
        else:
            adt = draw(st.sampled_from([np.int32, np.int64, np.int16, np.uint32, np.uint64]))
            hw = g.H * g.W
            info = np.iinfo(adt)
            bad = draw(
                st.one_of(st.integers(hw, min(info.max, 2**40)), st.integers(max(info.min, -(2**40)), -1))
                if info.min < 0
                else st.integers(hw, min(info.max, 2**40))
            )
            am = np.zeros(a["dout"].shape, adt)
            am.flat[draw(st.integers(0, am.size - 1))] = bad
            a["argmax"] = am
        return Case(
            f"ops.maxpool_backward({kind})", lambda put: SITES["ops.maxpool_backward"][1](put(a)), V, "argmax"
        )
    if family == "elem":
        a = draw(args_elem())
        site = draw(
            st.sampled_from(["ops.relu_backward", "ops.sigmoid_backward", "layers.Relu", "layers.Sigmoid"])
        )
        shape = draw(st.one_of(other_shape(a["dout"].shape, 0), wrong_ndim_shape({a["dout"].ndim})))
        a["dout"] = o(*shape, dtype=dt)
        return Case(f"{site}(dout {shape} vs {a['x'].shape})", lambda put: SITES[site][1](put(a)), V, "dout")
    if family == "dropout":  # a 0-D dout: see test_regression_zero_d_elementwise
        a = draw(args_elem())
        shape = draw(st.one_of(other_shape(a["dout"].shape, 0), wrong_ndim_shape({0, a["dout"].ndim})))
        if draw(st.booleans()):
            a["mask"] = np.ones(shape, bool)
            return Case(
                f"ops.dropout_backward(mask {shape})",
                lambda put: SITES["ops.dropout_backward"][1](put(a)),
                V,
                "mask",
            )
        a["dout"] = o(*shape, dtype=dt)
        return Case(
            f"layers.Dropout.backward(dout {shape})",
            lambda put: SITES["layers.Dropout"][1](put(a)),
            V,
            "mask",
            "dout",
        )
    if family == "affine":
        a = draw(args_affine())
        N, D = a["x"].shape
        H = a["W"].shape[1]
        site = draw(st.sampled_from(["ops.affine_forward", "ops.affine_backward", "layers.Affine"]))
        kind = draw(st.sampled_from(["x ndim", "W ndim", "x empty", "W empty", "features", "b", "dout"]))
        layer = site == "layers.Affine"
        if kind == "x ndim":
            a["x"], lead = o(*draw(wrong_ndim_shape({2, 3, 4, 5} if layer else {2})), dtype=dt), "x"
        elif kind == "W ndim":
            a["W"], lead = o(*draw(wrong_ndim_shape({2})), dtype=dt), "W"
        elif kind == "x empty":
            a["x"], lead = z(*draw(empty_shape(draw(st.integers(2, 4)) if layer else 2)), dtype=dt), "x"
        elif kind == "W empty":
            a["W"], lead = z(*draw(empty_shape(2)), dtype=dt), "W"
        elif kind == "features":
            a["W"], lead = o(draw(st.integers(1, 5).filter(lambda d: d != D)), H, dtype=dt), "W"
        elif kind == "b":
            site = "ops.affine_forward" if site == "ops.affine_backward" else site
            a["b"], lead = o(*draw(st.one_of(other_shape((H,), 0), wrong_ndim_shape({1}))), dtype=dt), "b"
        else:
            site = "ops.affine_backward" if site == "ops.affine_forward" else site
            a["dout"], lead = (
                o(*draw(st.one_of(other_shape((N, H), 0), wrong_ndim_shape({2}))), dtype=dt),
                "dout",
            )
        return Case(f"{site}({kind})", lambda put: SITES[site][1](put(a)), V, lead)
    if family == "softmax":
        a = draw(args_softmax())
        N, K = a["x"].shape
        kind = draw(st.sampled_from(["x ndim", "x empty", "y ndim", "y empty", "labels shape"]))
        if kind.startswith(("x", "y")):
            arg = kind[0]
            shape = draw(
                wrong_ndim_shape({1, 2}) if kind.endswith("ndim") else empty_shape(draw(st.integers(1, 2)))
            )
            a[arg] = o(*shape, dtype=dt)
            site = (
                "ops.softmax_cross_entropy_backward"
                if arg == "y"
                else draw(
                    st.sampled_from(
                        [
                            "ops.softmax",
                            "functions.softmax",
                            "ops.softmax_cross_entropy",
                            "layers.SoftmaxWithLoss",
                            "functions.softmax_loss",
                        ]
                    )
                )
            )
            return Case(f"{site}({kind} {shape})", lambda put: SITES[site][1](put(a)), V, arg)
        shape = draw(
            st.lists(st.integers(0, 4), max_size=3)
            .map(tuple)
            .filter(lambda s: s not in ((N,), (N, K)) and not (s == () and N == 1))
        )
        a["t"] = np.zeros(shape, draw(st.sampled_from(INT_DTYPES)))
        site = draw(st.sampled_from(sorted(LABEL_SITES)))
        return Case(
            f"{site}(t shape {shape} for x {(N, K)})",
            lambda put: LABEL_SITES[site](put(a["x"]), put(a["t"])),
            V,
            "t",
        )
    if family == "bn":
        a = draw(args_bn())
        N, D = a["x"].shape
        kind = draw(
            st.sampled_from(
                [
                    "x ndim",
                    "x empty",
                    "param size",
                    "dout ndim",
                    "dout empty",
                    "xc/xn shape",
                    "std/gamma size",
                    "layer x",
                    "layer gamma",
                    "layer dout",
                ]
            )
        )
        train = draw(st.sampled_from(["ops.batchnorm_forward_train", "ops.batchnorm_forward_infer"]))
        if kind in ("x ndim", "x empty"):
            a["x"] = o(*draw(wrong_ndim_shape({2}) if kind == "x ndim" else empty_shape(2)), dtype=dt)
            return Case(f"{train}({kind} {a['x'].shape})", lambda put: SITES[train][1](put(a)), V, "x")
        if kind == "param size":
            p = draw(st.sampled_from(["gamma", "beta", "running_mean", "running_var"]))
            a[p] = o(
                *draw(st.lists(st.integers(0, 5), max_size=3).filter(lambda s: math.prod(s) != D)), dtype=dt
            )
            return Case(f"{train}({p} {a[p].shape}, D={D})", lambda put: SITES[train][1](put(a)), V, p)
        bwd = "ops.batchnorm_backward"
        if kind in ("dout ndim", "dout empty"):
            a["dout"] = o(*draw(wrong_ndim_shape({2}) if kind == "dout ndim" else empty_shape(2)), dtype=dt)
            return Case(f"{bwd}({kind} {a['dout'].shape})", lambda put: SITES[bwd][1](put(a)), V, "dout")
        if kind == "xc/xn shape":
            p = draw(st.sampled_from(["xc", "xn"]))
            a[p] = o(*draw(st.one_of(other_shape((N, D), 0), wrong_ndim_shape({2}))), dtype=dt)
            return Case(f"{bwd}({p} {a[p].shape})", lambda put: SITES[bwd][1](put(a)), V, p)
        if kind == "std/gamma size":
            p = draw(st.sampled_from(["std", "gamma"]))
            a[p] = o(
                *draw(st.lists(st.integers(0, 5), max_size=3).filter(lambda s: math.prod(s) != D)), dtype=dt
            )
            return Case(f"{bwd}({p} {a[p].shape}, D={D})", lambda put: SITES[bwd][1](put(a)), V, p)
        site = draw(st.sampled_from(["layers.BatchNormalization", "layers.BatchNormalization infer"]))
        if kind == "layer x":
            shape = draw(st.one_of(wrong_ndim_shape({2, 3, 4, 5}), empty_shape(draw(st.integers(2, 4)))))
            a["x"] = o(*shape, dtype=dt)
            return Case(f"{site}(x {shape})", lambda put: SITES[site][1](put(a)), V, "x")
        if kind == "layer gamma":
            a["x"] = o(
                N,
                *draw(
                    st.lists(st.integers(1, 3), min_size=1, max_size=3).filter(lambda s: math.prod(s) != D)
                ),
                dtype=dt,
            )
            a["running_mean"] = a["running_var"] = None
            return Case(
                f"{site}(x {a['x'].shape}, gamma ({D},))", lambda put: SITES[site][1](put(a)), V, "gamma"
            )
        # a dout of another size per sample (same-size reshapes are accepted, as in the book)
        a["dout"] = o(
            *draw(
                st.lists(st.integers(1, 4), min_size=2, max_size=4).filter(
                    lambda s: s[0] != N or math.prod(s[1:]) != D
                )
            ),
            dtype=dt,
        )
        return Case(
            f"layers.BatchNormalization.backward(dout {a['dout'].shape}, x {(N, D)})",
            lambda put: SITES["layers.BatchNormalization"][1](put(a)),
            V,
            "xc",
            "xn",
            "dout",
        )
    # gemm
    a = draw(args_gemm())
    M, K = a["a"].shape
    N = a["b"].shape[1]
    kind = draw(st.sampled_from(["a ndim", "b ndim", "K", "out shape", "out layout", "beta without out"]))
    ta, tb = (draw(st.booleans()), draw(st.booleans())) if kind == "K" else (False, False)
    out_of = lambda put: put(a["out"])
    if kind == "a ndim":
        a["a"], lead = o(*draw(wrong_ndim_shape({2})), dtype=dt), "a"
    elif kind == "b ndim":
        a["b"], lead = o(*draw(wrong_ndim_shape({2})), dtype=dt), "b"
    elif kind == "K":
        K2 = draw(st.integers(0, 5).filter(lambda k: k != K))
        a["b"], lead = o(*((N, K2) if tb else (K2, N)), dtype=a["a"].dtype), "b"
        a["a"] = np.ascontiguousarray(a["a"].T) if ta else a["a"]
        a["out"] = None
        a["beta"] = 0.0
    elif kind == "out shape":
        a["out"], lead = z(*draw(st.one_of(other_shape((M, N), 0), wrong_ndim_shape({2}))), dtype=dt), "out"
        a["a"], a["b"] = a["a"].astype(dt), a["b"].astype(dt)
    elif kind == "out layout":
        M = max(M, 2)
        N = max(N, 2)
        a["a"], a["b"] = o(M, K, dtype=dt), o(K, N, dtype=dt)
        bad = draw(st.sampled_from(["F", "strided", "read-only", "broadcast"]))
        # the layout is made on the device (a transposed or sliced device array); read-only and broadcast
        # (zero-stride) arrays are NumPy's notions and stay NumPy arrays on every device
        if bad == "F":
            out_of = lambda put: put(z(N, M, dtype=dt)).T
        elif bad == "strided":
            out_of = lambda put: put(z(M, 2 * N, dtype=dt))[:, ::2]
        elif bad == "read-only":
            a["out"] = z(M, N, dtype=dt)
            a["out"].flags.writeable = False
            out_of = lambda put: a["out"]
        else:
            a["out"] = np.broadcast_to(dt.type(0), (M, N))
            out_of = lambda put: a["out"]
        lead = "out"
        kind = f"out {bad}"
    else:
        a["out"], a["beta"], lead = None, draw(st.floats(-3, 3).filter(lambda v: v != 0)), "out"
    return Case(
        f"ops.gemm({kind}, trans_a={ta}, trans_b={tb})",
        lambda put: ops.gemm(
            put(a["a"]),
            put(a["b"]),
            trans_a=ta,
            trans_b=tb,
            alpha=a["alpha"],
            beta=a["beta"],
            out=out_of(put),
        ),
        V,
        lead,
    )


# --------------------------------------------------------------------------------------------------------------
# family 3: scalar arguments (ints, ratios, eps, momentum, alpha/beta, dout, shapes given as sequences)

NOT_INTS = st.one_of(
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            2.0,
            1.0,
            0.5,
            np.float64(2.0),
            np.float32(1.0),
            True,
            False,
            np.bool_(True),
            "2",
            None,
            2j,
            [2],
            (2,),
            b"2",
            np.array([2]),
        ]
    ),
)
NOT_REALS = st.sampled_from(
    ["0.5", None, True, False, np.bool_(False), 0.5j, [0.5], (0.5,), b"1", {"v": 1}, np.array([0.5])]
)


@st.composite
def bad_int(draw, minimum):
    """(value, exception type): an int below ``minimum`` (ValueError) or not an int at all (TypeError)."""
    if draw(st.booleans()):
        return draw(
            st.one_of(st.integers(minimum - 3, minimum - 1), st.integers(-(2**70), minimum - 1))
        ), ValueError
    return draw(NOT_INTS), TypeError


@st.composite
def scalar_cases(draw):
    group = draw(
        st.sampled_from(
            [
                "conv",
                "im2col",
                "pool",
                "seed",
                "ratio",
                "eps",
                "momentum",
                "alpha/beta",
                "loss dout",
                "shape seq",
            ]
        )
    )
    if group == "conv":
        site = draw(st.sampled_from(["ops.conv_forward", "ops.conv_backward", "layers.Convolution"]))
        a = draw(args_conv())
        arg = draw(st.sampled_from(["stride", "pad"]))
        a[arg], exc = draw(bad_int(1 if arg == "stride" else 0))
        if arg == "pad" and isinstance(a[arg], str):
            exc = ValueError  # a string is a padding mode ("same", "valid"): the wrong value, not the wrong type
        return Case(f"{site}({arg}={a[arg]!r})", lambda put: SITES[site][1](put(a)), exc, arg)
    if group == "im2col":
        site = draw(st.sampled_from(["ops.im2col", "util.im2col", "ops.col2im", "util.col2im"]))
        a = draw(args_im2col())
        arg = draw(st.sampled_from(["filter_h", "filter_w", "stride", "pad"]))
        a[arg], exc = draw(bad_int(0 if arg == "pad" else 1))
        return Case(f"{site}({arg}={a[arg]!r})", lambda put: SITES[site][1](put(a)), exc, arg)
    if group == "pool":
        site = draw(
            st.sampled_from(
                [
                    "ops.maxpool_forward",
                    "ops.avgpool_forward",
                    "ops.maxpool_backward",
                    "ops.avgpool_backward",
                    "layers.Pooling",
                    "layers.AvgPooling",
                ]
            )
        )
        a = draw(args_pool())
        arg = draw(st.sampled_from(["pool_h", "pool_w", "stride", "pad"]))
        a[arg], exc = draw(bad_int(0 if arg == "pad" else 1))
        if arg == "pad" and isinstance(a[arg], str):
            exc = ValueError  # a string is a padding mode ("same", "valid"): the wrong value, not the wrong type
        return Case(f"{site}({arg}={a[arg]!r})", lambda put: SITES[site][1](put(a)), exc, arg)
    if group == "seed":
        a = draw(args_elem())
        if draw(st.booleans()):
            a["seed"], exc = draw(st.integers(2**64, 2**80)), ValueError
        else:
            a["seed"], exc = draw(bad_int(0))
        return Case(
            f"ops.dropout_forward(seed={a['seed']!r})",
            lambda put: SITES["ops.dropout_forward"][1](put(a)),
            exc,
            "seed",
        )
    if group == "ratio":
        site = draw(
            st.sampled_from(
                ["ops.dropout_forward", "ops.dropout_infer", "layers.Dropout", "layers.Dropout infer"]
            )
        )
        a = draw(args_elem())
        if draw(st.booleans()):
            a["dropout_ratio"], exc = (
                draw(
                    st.one_of(
                        st.floats(max_value=0.0, exclude_max=True),
                        st.floats(min_value=1.0),
                        st.just(float("nan")),
                        st.integers(1, 2**70),
                        st.integers(-(2**70), -1),
                    )
                ),
                ValueError,
            )
        else:
            a["dropout_ratio"], exc = draw(NOT_REALS), TypeError
        return Case(
            f"{site}(dropout_ratio={a['dropout_ratio']!r})",
            lambda put: SITES[site][1](put(a)),
            exc,
            "dropout_ratio",
        )
    if group == "eps":
        site = draw(st.sampled_from(["ops.batchnorm_forward_train", "ops.batchnorm_forward_infer"]))
        a = draw(args_bn())
        if draw(st.booleans()):
            a["eps"], exc = (
                draw(st.one_of(st.floats(max_value=0.0), st.just(float("nan")), st.integers(-5, 0))),
                ValueError,
            )
        else:
            a["eps"], exc = draw(NOT_REALS), TypeError
        return Case(f"{site}(eps={a['eps']!r})", lambda put: SITES[site][1](put(a)), exc, "eps")
    if group == "momentum":
        site = draw(st.sampled_from(["ops.batchnorm_forward_train", "layers.BatchNormalization"]))
        a = draw(args_bn())
        a["momentum"] = draw(NOT_REALS)
        return Case(
            f"{site}(momentum={a['momentum']!r})", lambda put: SITES[site][1](put(a)), TypeError, "momentum"
        )
    if group == "alpha/beta":
        a = draw(args_gemm())
        arg = draw(st.sampled_from(["alpha", "beta"]))
        a[arg] = draw(NOT_REALS)
        return Case(f"ops.gemm({arg}={a[arg]!r})", lambda put: SITES["ops.gemm"][1](put(a)), TypeError, arg)
    if group == "loss dout":
        site = draw(st.sampled_from(["ops.softmax_cross_entropy_backward", "layers.SoftmaxWithLoss"]))
        a = draw(args_softmax())
        a["dout"] = draw(NOT_REALS)
        return Case(f"{site}(dout={a['dout']!r})", lambda put: SITES[site][1](put(a)), TypeError, "dout")
    # input_shape / x_shape given as something other than 4 positive ints
    site = draw(
        st.sampled_from(["ops.col2im", "util.col2im", "ops.maxpool_backward", "ops.avgpool_backward"])
    )
    a = draw(args_im2col() if "col2im" in site else args_pool())
    arg = "input_shape" if "col2im" in site else "x_shape"
    if draw(st.booleans()):
        bad = draw(st.sampled_from([None, 5, 5.0, "abcd", {"N": 1}, object(), 2j]))
    else:
        s = list(a[arg])
        s[draw(st.integers(0, 3))] = draw(NOT_INTS)
        bad = draw(st.sampled_from([tuple, list]))(s)
    a[arg] = bad
    return Case(f"{site}({arg}={bad!r})", lambda put: SITES[site][1](put(a)), TypeError, arg)


# --------------------------------------------------------------------------------------------------------------
# family 4: window geometry and sizes


@st.composite
def geometry_cases(draw):
    kind = draw(
        st.sampled_from(
            [
                "filter too big",
                "pool pad >= window",
                "pool window too big",
                "huge filter",
                "huge stride",
                "pool size product overflow",
                "col2im big but consistent",
            ]
        )
    )
    dt = draw(DT)
    if kind in ("filter too big", "huge filter"):
        g = draw(small_conv())
        site = draw(
            st.sampled_from(
                [
                    "ops.conv_forward",
                    "ops.conv_backward",
                    "layers.Convolution",
                    "ops.im2col",
                    "util.im2col",
                    "ops.col2im",
                    "util.col2im",
                ]
            )
        )
        if kind == "huge filter":  # a W that size cannot exist: the im2col / col2im ints only
            site = draw(st.sampled_from(["ops.im2col", "util.im2col", "ops.col2im", "util.col2im"]))
        PH, PW = g.H + 2 * g.pad, g.W + 2 * g.pad
        axes = draw(st.sampled_from(["h", "w", "both"]))
        too_big = (
            (lambda P: st.integers(P + 1, P + 4))
            if kind == "filter too big"
            else (lambda P: st.integers(2**40, 2**62))
        )
        FH = draw(too_big(PH) if axes in ("h", "both") else st.integers(1, PH))
        FW = draw(too_big(PW) if axes in ("w", "both") else st.integers(1, PW))
        if "col" in site:
            a = {
                "input_data": o(*g.x_shape, dtype=dt),
                "col": o(1, 1, dtype=dt),
                "input_shape": g.x_shape,
                "filter_h": FH,
                "filter_w": FW,
                "stride": g.stride,
                "pad": g.pad,
            }
        else:
            a = conv_args(g, dt)
            a["W"] = o(g.FN, g.C, FH, FW, dtype=dt)
        return Case(
            f"{site}({kind} {FH}x{FW}, x {g.x_shape}, pad {g.pad})",
            lambda put: SITES[site][1](put(a)),
            ValueError,
            "filter",
            "filter_h",  # above the window-parameter limit the argument itself is named
            "filter_w",
        )
    if kind == "huge stride":  # above the bindings' documented limit for window parameters (2**40)
        g = draw(small_conv())
        site = draw(st.sampled_from(["ops.conv_forward", "ops.conv_backward", "ops.im2col", "ops.col2im"]))
        a = draw(args_im2col()) if "col" in site else conv_args(g, dt)
        a["stride"] = draw(st.integers(2**40 + 1, 2**63 - 1))
        if site == "ops.conv_backward":
            a["dout"] = o(g.N, g.FN, 1, 1, dtype=dt)
        if site == "ops.col2im":
            a["col"] = o(a["input_shape"][0], a["input_shape"][1] * a["filter_h"] * a["filter_w"], dtype=dt)
        return Case(f"{site}(stride={a['stride']})", lambda put: SITES[site][1](put(a)), ValueError, "stride")
    site = draw(
        st.sampled_from(
            [
                "ops.maxpool_forward",
                "ops.avgpool_forward",
                "layers.Pooling",
                "layers.AvgPooling",
                "ops.maxpool_backward",
                "ops.avgpool_backward",
            ]
        )
    )
    a = draw(args_pool())
    H, W = a["x_shape"][2:]
    if kind == "pool pad >= window":
        ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        a["pool_h"], a["pool_w"], a["pad"] = ph, pw, draw(st.integers(min(ph, pw), min(ph, pw) + 5))
        return Case(
            f"{site}(pool {ph}x{pw}, pad {a['pad']})", lambda put: SITES[site][1](put(a)), ValueError, "pad"
        )
    if kind == "pool window too big":
        pad = a["pad"]
        axes = draw(st.sampled_from(["h", "w", "both"]))
        PH, PW = H + 2 * pad, W + 2 * pad
        a["pool_h"] = draw(st.integers(PH + 1, PH + 5) if axes in ("h", "both") else st.integers(pad + 1, PH))
        a["pool_w"] = draw(st.integers(PW + 1, PW + 5) if axes in ("w", "both") else st.integers(pad + 1, PW))
        return Case(
            f"{site}(pool {a['pool_h']}x{a['pool_w']}, x {a['x_shape']}, pad {pad})",
            lambda put: SITES[site][1](put(a)),
            ValueError,
            "pool window",
        )
    if (
        kind == "pool size product overflow"
    ):  # pool_h * pool_w >= 2**63 with a stride that keeps the output 1x1
        site = draw(st.sampled_from(["ops.maxpool_forward", "ops.avgpool_forward"]))
        p = draw(st.integers(2**32, 2**40))
        a["pool_h"] = a["pool_w"] = p
        a["pad"] = p - 1
        a["stride"] = draw(st.integers(2**39, 2**40))  # <= the window-parameter limit; output stays <= 2x2
        return Case(
            f"{site}(pool {p}x{p}, pad {p - 1}, stride {a['stride']})",
            lambda put: SITES[site][1](put(a)),
            ValueError,
            "pool_h",
        )
    # col2im: a large input_shape (no overflow) that the small col does not match
    site = draw(st.sampled_from(["ops.col2im", "util.col2im"]))
    a = draw(args_im2col())
    a["input_shape"] = (draw(st.integers(2**10, 2**15)), draw(st.integers(2**10, 2**15)), 4, 4)
    a["filter_h"] = a["filter_w"] = 1
    a["stride"], a["pad"] = 1, 0
    return Case(
        f"{site}(input_shape={a['input_shape']}, col {a['col'].shape})",
        lambda put: SITES[site][1](put(a)),
        ValueError,
        "col",
    )


# --------------------------------------------------------------------------------------------------------------
# family 5: labels


@st.composite
def label_value_cases(draw):
    site = draw(st.sampled_from(sorted(LABEL_SITES)))
    N, K = draw(st.integers(1, 4)), draw(st.integers(2, 6))
    x = o(N, K, dtype=draw(DT))
    ldt = draw(st.sampled_from(INT_DTYPES))
    info = np.iinfo(ldt)
    lo = st.integers(max(info.min, -(2**70)), -1) if info.min < 0 else st.nothing()
    bad = draw(st.one_of(st.integers(K, min(info.max, 2**70)), lo))
    t = (np.arange(N) % K).astype(ldt)
    i = draw(st.integers(0, N - 1))
    t[i] = bad
    t = relayout_plain(t, draw(st.booleans()))
    return Case(
        f"{site}(label {bad} of {np.dtype(ldt)} at {i}, K={K})",
        lambda put: LABEL_SITES[site](put(x), put(t)),
        ValueError,
        "t",
    )


def relayout_plain(t, reverse):
    return np.ascontiguousarray(t[::-1])[::-1] if reverse else t


# --------------------------------------------------------------------------------------------------------------
# the invalid-call properties (N_INVALID calls each)


@INVALID
@given(case=st.one_of(dtype_cases(), special_dtype_cases(), label_dtype_cases()))
def test_invalid_dtypes(device, case):
    check_invalid(case, "dtypes", device)


@INVALID
@given(case=shape_cases())
def test_invalid_shapes(device, case):
    check_invalid(case, "shapes", device)


@INVALID
@given(case=scalar_cases())
def test_invalid_scalars(device, case):
    check_invalid(case, "scalars", device)


@INVALID
@given(case=geometry_cases())
def test_invalid_geometry(device, case):
    check_invalid(case, "geometry", device)


@INVALID
@given(case=st.one_of(label_value_cases(), label_dtype_cases()))
def test_invalid_labels(device, case):
    check_invalid(case, "labels", device)


# ======================================================================================================
# known bugs: each fails today; the message (or result) it asserts is what the issue asks for


@BUG
@given(data=st.data())
def test_regression_zero_d_elementwise(device, data):
    """Regression (fixed): Element-wise ops on a 0-D array return shape (1,) (ops._c uses
    np.ascontiguousarray, which makes 0-D arrays
    1-D), where NumPy and the reference return shape (); dropout_backward then rejects a matching 0-D mask, and
    accepts a 0-D dout with a mask of shape (1,) (returning shape (1,)) instead of raising."""
    (dt,) = draw_dtypes(data, 1)
    x = np.array(data.draw(st.floats(-10, 10)), dtype=dt)
    site = data.draw(
        st.sampled_from(
            [
                "relu_forward",
                "sigmoid_forward",
                "relu_backward",
                "sigmoid_backward",
                "dropout_forward",
                "dropout_backward",
                "functions.sigmoid",
                "functions.relu",
                "dropout_backward (1,) mask",
            ]
        )
    )
    if site == "dropout_backward (1,) mask":
        check_invalid(
            Case(
                "ops.dropout_backward(dout shape (), mask shape (1,))",
                lambda put: ops.dropout_backward(put(x), put(np.ones(1, bool))),
                ValueError,
                "mask",
                "dout",
            ),
            "bugs",
            device,
        )
        return
    xd, mask = to_device(x, device), to_device(np.array(True), device)
    f = {
        "relu_forward": lambda: ops.relu_forward(xd),
        "sigmoid_forward": lambda: ops.sigmoid_forward(xd),
        "relu_backward": lambda: ops.relu_backward(xd, xd),
        "sigmoid_backward": lambda: ops.sigmoid_backward(xd, xd),
        "dropout_forward": lambda: ops.dropout_forward(xd, 0.5, 1)[0],
        "dropout_backward": lambda: ops.dropout_backward(xd, mask),
        "functions.sigmoid": lambda: functions.sigmoid(xd),
        "functions.relu": lambda: functions.relu(xd),
    }[site]
    got = f()
    assert got.shape == (), f"{site}: a 0-D input gave shape {got.shape}, NumPy gives ()"


@BUG
@given(data=st.data())
def test_regression_softmax_ce_single_class_targets(device, data):
    """Regression (fixed): x of shape (1,) (one class, 1-D) with a float one-hot t of shape (1,) -- x's shape
    -- raises
    "t: float targets must have the shape of x (1,) (one-hot), got (1,)": a TypeError that contradicts itself.
    (Integer t of shape (1,) are read as labels, the reference reads them as dense targets.)"""
    x = np.array([data.draw(st.floats(-10, 10))])
    t = np.array([data.draw(st.sampled_from([1.0, 0.0]))], dtype=data.draw(st.sampled_from([F32, F64])))
    loss, y = ops.softmax_cross_entropy(to_device(x, device), to_device(t, device))
    assert y.shape == (1,)
    np.testing.assert_allclose(
        to_host(loss), R.functions.cross_entropy_error(R.functions.softmax(x), t), atol=1e-12
    )


def _readonly(a):
    a.flags.writeable = False
    return a


@BUG
@given(data=st.data())
def test_regression_batchnorm_readonly_running_stats(device, data):
    """Regression (fixed): A read-only running_mean / running_var that needs a dtype conversion fails at the
    write-back with NumPy's
    "assignment destination is read-only" (the argument is not named), after the other statistic was already
    updated in place."""
    D = data.draw(st.integers(1, 4))
    x = np.random.default_rng(0).standard_normal((3, D))
    which = data.draw(st.sampled_from(["running_mean", "running_var"]))
    stats = {"running_mean": np.zeros(D, np.float32), "running_var": np.ones(D, np.float32)}
    stats[which] = _readonly(stats[which])
    saved = {k: v.copy() for k, v in stats.items()}
    # read-only is a NumPy flag: the statistics stay NumPy arrays on every device (as in test_invalid_shapes)
    x, gamma, beta = (to_device(a, device) for a in (x, np.ones(D), np.zeros(D)))
    with pytest.raises(ValueError, match=rf"^{which}"):
        ops.batchnorm_forward_train(x, gamma, beta, stats["running_mean"], stats["running_var"])
    for k, v in stats.items():
        np.testing.assert_array_equal(v, saved[k], err_msg=f"{k} changed by a call that raised")


@BUG
@given(data=st.data())
def test_regression_batchnorm_layer_backward_bad_dout(device, data):
    """Regression (fixed): BatchNormalization.backward flattens dout with dout.reshape(dout.shape[0], -1)
    before any check: a 0-D dout
    (a scalar, a string) raises IndexError "tuple index out of range", an empty one NumPy's "cannot reshape array
    of size 0" -- neither names dout."""
    layer = layers.BatchNormalization(to_device(np.ones(4), device), to_device(np.zeros(4), device))
    layer.forward(to_device(np.random.default_rng(0).standard_normal((3, 4)), device))
    dout = data.draw(
        st.sampled_from([np.float64(1.0), 1.0, "abc", np.zeros((0, 4)), np.zeros((0, 2, 2)), True])
    )
    check_invalid(
        Case(
            f"layers.BatchNormalization.backward(dout={dout!r})",
            lambda put: layer.backward(put(dout)),
            (ValueError, TypeError),
            "dout",
        ),
        "bugs",
        device,
    )


@BUG
@given(
    seed=st.one_of(st.integers(-(2**70), -1), st.floats(allow_nan=False), st.sampled_from(["1", b"1", 1j]))
)
def test_regression_dropout_layer_seed(device, seed):
    """Regression (fixed): layers.Dropout(seed=...) hands the seed to np.random.default_rng unchecked:
    NumPy's "expected non-negative
    integer" / "SeedSequence expects int or sequence of ints" do not name seed."""
    check_invalid(
        Case(
            f"layers.Dropout(seed={seed!r})",
            lambda put: layers.Dropout(0.5, seed=seed).forward(put(o(3))),
            (ValueError, TypeError),
            "seed",
        ),
        "bugs",
        device,
    )


@BUG
@given(data=st.data())
def test_regression_cross_entropy_error_labels(device, data):
    """Regression (fixed): functions.cross_entropy_error (the reference function re-exported) indexes y with
    the labels: a label >= K
    raises IndexError, a negative one silently reads another class (ops.softmax_cross_entropy raises
    "t: label ... is out of range")."""
    N, K = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 5))
    t = np.arange(N) % K
    t[data.draw(st.integers(0, N - 1))] = data.draw(st.one_of(st.integers(K, 100), st.integers(-K, -1)))
    y = np.full((N, K), 1.0 / K)
    check_invalid(
        Case(
            f"functions.cross_entropy_error(t={t.tolist()}, K={K})",
            lambda put: functions.cross_entropy_error(put(y), put(t)),
            ValueError,
            "t",
        ),
        "bugs",
        device,
    )


@BUG
@given(data=st.data())
def test_regression_huge_sizes_name_the_argument(device, data):
    """Regression (fixed): Sizes too large to allocate are rejected, but the message names an internal array
    instead of the argument
    that made it large: "col: ... elements is too large" for col2im's input_shape (the caller's col is small),
    "out: ..." / "col: ..." for a huge pad."""
    kind = data.draw(
        st.sampled_from(["col2im input_shape", "conv pad", "conv_backward pad", "im2col pad", "col2im pad"])
    )
    x, W, b = o(1, 1, 4, 4), o(1, 1, 3, 3), o(1)
    if kind == "col2im input_shape":
        shape = (data.draw(st.integers(2**30, 2**50)), 1, data.draw(st.integers(2**30, 2**50)), 4)
        case = Case(
            f"ops.col2im(input_shape={shape})",
            lambda put: ops.col2im(put(o(1, 9)), shape, 3, 3),
            ValueError,
            "input_shape",
        )
    else:
        pad = data.draw(st.integers(2**30, 2**62))
        call = {
            "conv pad": lambda put: ops.conv_forward(put(x), put(W), put(b), 1, pad),
            "conv_backward pad": lambda put: ops.conv_backward(put(x), put(W), put(o(1, 1, 2, 2)), 1, pad),
            "im2col pad": lambda put: ops.im2col(put(x), 3, 3, 1, pad),
            "col2im pad": lambda put: ops.col2im(put(o(1, 9)), (1, 1, 4, 4), 3, 3, 1, pad),
        }[kind]
        case = Case(f"{kind}={pad}", call, ValueError, "pad")
    check_invalid(case, "bugs", device)


@BUG
@given(data=st.data())
def test_regression_int64_overflowing_scalars(device, data):
    """Regression (fixed): Window ints >= 2**63 pass the Python checks (they are ints >= 1) and reach the
    pybind11 bindings, which
    raise TypeError "incompatible function arguments ..." listing the C++ signature instead of naming the
    argument."""
    v = data.draw(st.integers(2**63, 2**70))
    kind = data.draw(
        st.sampled_from(
            [
                "conv stride",
                "conv pad",
                "im2col filter_w",
                "maxpool stride",
                "avgpool pool",
                "maxpool_backward stride",
            ]
        )
    )
    x = o(1, 1, 4, 4)
    call, arg = {
        "conv stride": (lambda put: ops.conv_forward(put(x), put(o(1, 1, 3, 3)), put(o(1)), v, 0), "stride"),
        "conv pad": (lambda put: ops.conv_forward(put(x), put(o(1, 1, 3, 3)), put(o(1)), v, v), "stride"),
        "im2col filter_w": (lambda put: ops.im2col(put(x), 1, v, 1, v), "filter_w"),
        "maxpool stride": (lambda put: ops.maxpool_forward(put(x), 2, 2, v, 0), "stride"),
        "avgpool pool": (lambda put: ops.avgpool_forward(put(x), v, v, v, v - 1), "pool_h"),
        "maxpool_backward stride": (
            lambda put: ops.maxpool_backward(
                put(o(1, 1, 1, 1)), put(np.zeros((1, 1, 1, 1), np.int32)), (1, 1, 4, 4), 2, 2, v, 0
            ),
            "stride",
        ),
    }[kind]
    check_invalid(Case(f"{kind}={v}", call, (ValueError, TypeError), arg, "pad"), "bugs", device)


@BUG
@given(data=st.data())
def test_regression_pool_huge_window_unchecked(device, data):
    """Regression (fixed): A pool window near 2**32 with pad = window - 1 gives an output of ~2**64 elements:
    pooling has no size check
    before allocating it, so NumPy raises "array is too big; `arr.size * arr.dtype.itemsize` is larger than the
    maximum possible size." (naming nothing; with a window near 2**20 it is a MemoryError for 8 TiB instead --
    not exercised here)."""
    p = data.draw(st.integers(2**32, 2**40))
    site = data.draw(st.sampled_from(["maxpool_forward", "avgpool_forward"]))
    f = getattr(ops, site)
    check_invalid(
        Case(
            f"ops.{site}(pool {p}x{p}, pad {p - 1}, stride 1)",
            lambda put: f(put(o(1, 1, 4, 4)), p, p, 1, p - 1),
            ValueError,
            "pool_h",
            "pool_w",
            "pad",
            "x",
        ),
        "bugs",
        device,
    )


@BUG
@given(data=st.data())
def test_regression_pool_backward_x_shape_product_overflow(device, data):
    """Regression (fixed): maxpool/avgpool_backward compute the element count of x_shape with np.prod in
    int64: (2**32, 2**32, 4, 4)
    wraps to 0 and the message says "x: empty array (shape (4294967296, 4294967296, 4, 4)); every dimension must
    be >= 1" -- wrong, and about x, not x_shape."""
    e = data.draw(st.integers(32, 40))
    shape = (2**e, 2 ** (64 - e + data.draw(st.integers(0, 4))), 4, 4)
    site = data.draw(st.sampled_from(["maxpool_backward", "avgpool_backward"]))
    dout = o(1, 1, 2, 2)
    if site == "maxpool_backward":
        call = lambda put: ops.maxpool_backward(put(dout), put(np.zeros((1, 1, 2, 2), np.int32)), shape, 2, 2)
    else:
        call = lambda put: ops.avgpool_backward(put(dout), shape, 2, 2)
    case = Case(f"ops.{site}(x_shape={shape})", call, ValueError, "x_shape", "dout")
    try:
        call(lambda v: on_device(v, device))
    except ValueError as e:
        assert "empty" not in str(e), f"{case!r}: {e}"
    check_invalid(case, "bugs", device)
