"""float16 and bfloat16 (``ml_dtypes.bfloat16``) kernels against the float64 reference, on every ISA path.

The 16-bit types are storage types: kernels widen their inputs to float32 (exactly), compute in float32 and
round once when they store. Every test runs the reference in float64 on the SAME rounded inputs, so the
inputs carry no error and the allowed difference is derived, not tuned (``bound`` below):

* a sum of K products accumulated in float32 (the GEMM; products of two 16-bit values are exact in float32)
  is within ``K * u32 * sum|a||b|`` of the exact sum, u32 = 2**-24 (the standard gamma_K bound; alpha, beta and
  the bias add a few more roundings, counted as extra terms of K);
* an elementwise function in float32 (exp, tanh, a few products) is within a few float32 ulps:
  ``c * u32 * |ref|`` with c = 4;
* the final store rounds to nearest: relative error <= u_store = 2**-11 (float16) / 2**-8 (bfloat16) of the
  value stored, plus half the smallest subnormal of the type (2**-25 for float16) where it underflows.

So ``|out - ref| <= acc + u_store * (|ref| + acc) + tiny``, with ``acc`` the float32 bound. Overflow: a float16
result is the float32 result rounded, so a value at or above 65520 (halfway above the largest float16, 65504)
becomes inf, exactly as NumPy's ``astype(np.float16)`` of the float32 result would (test_gemm_overflow).
The row conversions themselves are checked bit for bit against NumPy's float16 and ml_dtypes' bfloat16 casts.
"""

import functools

import fastconv
import numpy as np
import pytest
from conftest import f64
from fastconv import layers, ops, util
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers
from fastconv.reference import sdpa as ref_sdpa
from fastconv.reference import time_layers as ref_tl
from fastconv.reference import util as ref_util

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)

U32 = 2.0**-24
U_STORE = {F16: 2.0**-11, BF16: 2.0**-8}
TINY = {F16: 2.0**-25, BF16: 2.0**-134}
SUFFIX = {F16: "f16", BF16: "bf16"}


@pytest.fixture(params=[F16, BF16], ids=["f16", "bf16"])
def hdtype(request):
    """The 16-bit storage type under test."""
    return request.param


def bound(ref, hdtype, acc=0.0):
    """Largest |out - ref| allowed for a result rounded once to ``hdtype`` from a float32 value within ``acc`` of
    the exact ``ref`` (see the module docstring)."""
    ref = np.abs(np.asarray(ref, dtype=np.float64))
    return acc + U_STORE[hdtype] * (ref + acc) + TINY[hdtype]


def assert_within(out, ref, tol, msg=""):
    """Every |out - ref| <= tol; infinities and NaNs must match exactly."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, msg
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg=f"NaN positions {msg}")
    np.testing.assert_array_equal(out[np.isinf(ref)], ref[np.isinf(ref)], err_msg=f"infinities {msg}")
    err = np.abs(out[finite] - ref[finite])
    tol = np.broadcast_to(tol, ref.shape)[finite]
    worst = np.argmax(err - tol) if err.size else 0
    assert err.size == 0 or np.all(err <= tol), (
        f"{msg}: |err| {err[worst]:.3g} > bound {tol[worst]:.3g} (ref {ref[finite][worst]:.6g})")


def rand(rng, shape, hdtype, scale=1.0):
    """Normal values rounded to ``hdtype`` (the reference then sees exactly the kernel's inputs)."""
    return (scale * rng.standard_normal(shape)).astype(np.float32).astype(hdtype)


# ======================================================================================================
# the row conversions, bit for bit, on every ISA path


def all_f16_patterns():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


def narrow_inputs(rng):
    """float32 values that exercise rounding: every float16 value, the exact midpoints between neighbours (ties)
    and one float32 ulp either side of them, float32 subnormals, overflow thresholds, specials, random bits."""
    h = all_f16_patterns().astype(np.float32)
    h = h[np.isfinite(h)]
    hs = np.sort(np.unique(h))
    mid = ((hs[:-1].astype(np.float64) + hs[1:]) / 2).astype(np.float32)
    up, down = np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.996, 65520, 65536, 3.4e38, -3.4e38,
                        2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-26, 1e-45, -1e-45, 1.17e-38, 2.0**-14],
                       dtype=np.float32)
    rnd = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([h, mid, up, down, special, rnd, -mid, -up])


def cast(x, dtype):
    """NumPy's / ml_dtypes' rounding of x to dtype (the oracle), overflow to inf being the expected result."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


def same_bits_or_nan(got, want, msg):
    gn, wn = np.isnan(got.astype(np.float32)), np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(gn, wn, err_msg=f"NaN positions {msg}")
    np.testing.assert_array_equal(got.view(np.uint16)[~gn], want.view(np.uint16)[~wn], err_msg=msg)


def test_widen_f16_every_pattern(isa):
    h = all_f16_patterns()
    out = np.empty(h.size, np.float32)
    fastconv._cpu.half_widen_f16(h, out)
    want = h.astype(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], want.view(np.uint32)[~nan], err_msg=isa)


def test_widen_bf16_every_pattern(isa):
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(BF16)
    out = np.empty(h.size, np.float32)
    fastconv._cpu.half_widen_bf16(h, out)
    # exact by definition: the pattern in the top 16 bits of a float32
    np.testing.assert_array_equal(out.view(np.uint32), h.view(np.uint16).astype(np.uint32) << 16, err_msg=isa)


@pytest.mark.parametrize("length", [1, 7, 8, 15, 16, 17, 33])
def test_narrow_tails(rng, isa, hdtype, length):
    """Lengths around the 8- and 16-lane vector widths: the scalar tail and the vector body agree."""
    x = (rng.standard_normal(length) * 100).astype(np.float32)
    out = np.empty(length, hdtype)
    getattr(fastconv._cpu, f"half_narrow_{SUFFIX[hdtype]}")(x, out)
    same_bits_or_nan(out, cast(x, hdtype), f"{isa} n={length}")


def test_narrow_rounds_to_nearest_even(rng, isa, hdtype):
    x = narrow_inputs(rng)
    out = np.empty(x.size, hdtype)
    getattr(fastconv._cpu, f"half_narrow_{SUFFIX[hdtype]}")(x, out)
    same_bits_or_nan(out, cast(x, hdtype), isa)


# ======================================================================================================
# GEMM


GEMM_SIZES = [(1, 1, 1), (3, 5, 7), (17, 19, 33), (16, 16, 16), (97, 257, 9), (100, 300, 800), (5, 600, 1700)]


def gemm_ref(a, b, ta, tb):
    A, B = f64(a, b)
    return (A.T if ta else A) @ (B.T if tb else B)


@pytest.mark.parametrize("size", GEMM_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in GEMM_SIZES])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["nn", "tn", "nt", "tt"])
def test_gemm(rng, isa, hdtype, size, ta, tb):
    M, N, K = size
    a = rand(rng, (K, M) if ta else (M, K), hdtype)
    b = rand(rng, (N, K) if tb else (K, N), hdtype)
    out = ops.gemm(a, b, trans_a=ta, trans_b=tb)
    assert out.dtype == hdtype and out.shape == (M, N)
    ref = gemm_ref(a, b, ta, tb)
    acc = K * U32 * gemm_ref(np.abs(f64(a)), np.abs(f64(b)), ta, tb)
    assert_within(out, ref, bound(ref, hdtype, acc), f"{isa} {size} {ta} {tb}")


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -1.5), (0.0, 2.0), (3.0, 0.0)])
def test_gemm_alpha_beta(rng, isa, hdtype, alpha, beta):
    M, N, K = 37, 290, 130
    a, b, c0 = rand(rng, (M, K), hdtype), rand(rng, (K, N), hdtype), rand(rng, (M, N), hdtype)
    out = c0.copy()
    assert ops.gemm(a, b, alpha=alpha, beta=beta, out=out) is out
    ref = alpha * gemm_ref(a, b, False, False) + beta * f64(c0)
    # K float32 roundings of the sum, then alpha * acc, beta * c and their sum: three more
    mag = abs(alpha) * gemm_ref(np.abs(f64(a)), np.abs(f64(b)), False, False) + abs(beta) * np.abs(f64(c0))
    assert_within(out, ref, bound(ref, hdtype, (K + 3) * U32 * mag), f"{isa} alpha={alpha} beta={beta}")


def test_gemm_threads_same_bits(rng, hdtype):
    a, b = rand(rng, (300, 500), hdtype), rand(rng, (500, 700), hdtype)
    prev = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        one = ops.gemm(a, b)
        fastconv.set_num_threads(2)
        two = ops.gemm(a, b)
    finally:
        fastconv.set_num_threads(prev)
    np.testing.assert_array_equal(one.view(np.uint16), two.view(np.uint16))


def test_gemm_overflow_f16(isa):
    """float16 overflow is the float32 result rounded: 65504 + 8 stays 65504, 65504 + 16 (a tie) rounds to the
    even neighbour 65536, which is inf; a large product is inf, not a saturated value."""
    a = np.ones((1, 2), np.float16)
    b = np.array([[65504.0, 65504.0, 300.0], [8.0, 16.0, 0.0]], np.float16)
    out = ops.gemm(a, b)
    np.testing.assert_array_equal(out, np.array([[65504.0, np.inf, 300.0]], np.float16))
    big = ops.gemm(np.full((1, 1), 300.0, np.float16), np.full((1, 1), -300.0, np.float16))
    assert np.isneginf(big[0, 0]) and big.dtype == np.float16
    np.testing.assert_array_equal(out, cast((f64(a) @ f64(b)).astype(np.float32), np.float16))


def test_mixed_dtypes_follow_numpy(rng):
    a16, b32 = rand(rng, (4, 5), F16), rng.standard_normal((5, 3)).astype(np.float32)
    assert ops.gemm(a16, b32).dtype == np.float32
    assert ops.gemm(rand(rng, (4, 5), BF16), rand(rng, (5, 3), BF16)).dtype == BF16
    assert ops.relu_forward(rand(rng, 5, BF16)).dtype == BF16


# ======================================================================================================
# affine


@pytest.mark.parametrize("N,D,H", [(1, 1, 1), (7, 13, 5), (100, 300, 10), (33, 1000, 300)])
def test_affine(rng, isa, hdtype, N, D, H):
    x, W, b, dout = rand(rng, (N, D), hdtype), rand(rng, (D, H), hdtype, 0.1), rand(rng, H, hdtype), \
        rand(rng, (N, H), hdtype)
    out = ops.affine_forward(x, W, b)
    ref = ref_layers.Affine(*f64(W, b))
    want = ref.forward(f64(x))
    mag = np.abs(f64(x)) @ np.abs(f64(W)) + np.abs(f64(b))
    assert out.dtype == hdtype
    assert_within(out, want, bound(want, hdtype, (D + 1) * U32 * mag), f"{isa} forward")
    dx, dW, db = ops.affine_backward(x, W, dout)
    rdx = ref.backward(f64(dout))
    ad = np.abs(f64(dout))
    assert_within(dx, rdx, bound(rdx, hdtype, H * U32 * (ad @ np.abs(f64(W)).T)), f"{isa} dx")
    assert_within(dW, ref.dW, bound(ref.dW, hdtype, N * U32 * (np.abs(f64(x)).T @ ad)), f"{isa} dW")
    assert_within(db, ref.db, bound(ref.db, hdtype, N * U32 * ad.sum(0)), f"{isa} db")
    assert {dx.dtype, dW.dtype, db.dtype} == {hdtype}


def test_affine_layer(rng, hdtype):
    """The book's Affine layer takes 16-bit parameters and inputs and keeps their dtype."""
    W, b, x = rand(rng, (20, 4), hdtype), rand(rng, 4, hdtype), rand(rng, (3, 20), hdtype)
    layer = layers.Affine(W, b)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.dW.dtype == layer.db.dtype == hdtype


# ======================================================================================================
# activations


def special_values(hdtype):
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-7, -1e-7, 60000.0, -60000.0], np.float32).astype(hdtype)


@pytest.mark.parametrize("n", [1, 17, 511, 513, 40000])
def test_relu_and_leaky_exact(rng, isa, hdtype, n):
    """ReLU and leaky ReLU with alpha a power of two are exact in float32, so the result is the reference
    rounded once to the type (leaky ReLU of a tiny value underflows exactly as that rounding does)."""
    x = np.concatenate([rand(rng, n, hdtype), special_values(hdtype)])
    for got, want in [
        (ops.relu_forward(x), ref_functions.relu(f64(x))),
        (ops.leaky_relu_forward(x, 0.25), ref_layers.LeakyRelu(0.25).forward(f64(x))),
    ]:
        assert got.dtype == hdtype
        # values, not bits: ReLU maps -0.0 to +0.0 (relu_value), the reference keeps -0.0
        np.testing.assert_array_equal(f64(got), f64(cast(want, hdtype)), err_msg=isa)
    dout = rand(rng, x.shape, hdtype)
    out = ops.relu_forward(x)
    dx = ops.relu_backward(dout, out)
    np.testing.assert_array_equal(f64(dx), np.where(f64(out) <= 0, 0.0, f64(dout)))


@pytest.mark.parametrize("n", [1, 513, 40000])
def test_sigmoid_tanh(rng, isa, hdtype, n):
    x = np.concatenate([rand(rng, n, hdtype, 4.0), special_values(hdtype)])
    dout = rand(rng, x.shape, hdtype)
    c = 4 * U32  # a few float32 ulps for exp/tanh and the products of the backward formulas
    for name, fwd, bwd, ref_layer in [
        ("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward, ref_layers.Sigmoid()),
        ("tanh", ops.tanh_forward, ops.tanh_backward, ref_layers.Tanh()),
    ]:
        out = fwd(x)
        want = ref_layer.forward(f64(x))
        assert out.dtype == hdtype
        assert_within(out, want, bound(want, hdtype, c * np.abs(want)), f"{isa} {name}")
        # backward on the kernel's own (rounded) forward output, as a layer would run it
        dx = bwd(dout, out)
        o, d = f64(out, dout)
        rdx = d * (1 - o) * o if name == "sigmoid" else d * (1 - o * o)
        assert_within(dx, rdx, bound(rdx, hdtype, c * (np.abs(d) * (1 + np.abs(o)) * np.abs(o) + np.abs(rdx))),
                      f"{isa} {name} backward")


def test_leaky_relu_backward(rng, isa, hdtype):
    x = rand(rng, 1000, hdtype)
    out = ops.leaky_relu_forward(x, 0.1)
    dout = rand(rng, 1000, hdtype)
    dx = ops.leaky_relu_backward(dout, out, 0.1)
    want = np.where(f64(out) <= 0, 0.1 * f64(dout), f64(dout))
    assert_within(dx, want, bound(want, hdtype, U32 * np.abs(want)), isa)


def test_layers_keep_dtype(rng, hdtype):
    x = rand(rng, (4, 6), hdtype)
    for layer in (layers.Relu(), layers.Sigmoid()):
        out = layer.forward(x)
        assert out.dtype == layer.backward(np.ones_like(out)).dtype == hdtype


# ======================================================================================================
# the bindings check the 16-bit dtype


def test_binding_checks_half_dtype(rng):
    """The bindings check the 16-bit dtype too (a float16 array is not taken for a bfloat16 one)."""
    a = rand(rng, (2, 2), F16)
    with pytest.raises(TypeError, match="^a: dtype float16, expected bfloat16"):
        fastconv._cpu.gemm_bf16(a, a, np.empty((2, 2), BF16))
    q = rand(rng, (1, 2, 2), BF16)
    with pytest.raises(TypeError, match="^p: dtype float16, expected bfloat16"):
        fastconv._cpu.sdpa_forward_bf16(q, q, q, None, np.empty((1, 2, 2), F16), np.empty((1, 2, 2), BF16), 1.0)
    xs, h = rand(rng, (1, 2, 2), F16), rand(rng, (1, 2), F16)
    w = rand(rng, (2, 2), F16)
    with pytest.raises(TypeError, match="^xs: dtype float16, expected bfloat16"):
        fastconv._cpu.rnn_forward_bf16(xs, w, w, h[0], h, np.empty((1, 2, 2), BF16))


# ======================================================================================================
# convolution (every group count, stride, padding, dilation) and the transposed convolution

# (N, C, H, W, FN, FH, FW, stride, pad, dilation, groups)
CONV_CASES = [
    (2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1),
    (3, 4, 9, 8, 6, 3, 3, 2, 0, 1, 2),
    (1, 4, 6, 6, 8, 3, 3, 1, "same", 1, 4),
    (17, 2, 5, 5, 3, 2, 2, 1, 0, 2, 1),
    (20, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1),
]


def conv_ref(x, Wt, b, dout, case):
    """Reference results and their magnitudes (the same reference on |x|, |W|, |b|, |dout|)."""
    *_, stride, pad, dilation, groups = case
    out = []
    for xa, Wa, ba, da in ((x, Wt, b, dout), (np.abs(x), np.abs(Wt), np.abs(b), np.abs(dout))):
        ref = ref_layers.Convolution(Wa, ba, stride, pad, dilation, groups)
        y = ref.forward(xa)
        dx = ref.backward(da)
        out.append((y, dx, ref.dW, ref.db))
    return out


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"case{i}" for i in range(len(CONV_CASES))])
def test_conv(rng, isa, hdtype, case):
    N, C, H, W, FN, FH, FW, stride, pad, dilation, groups = case
    x, Wt, b = rand(rng, (N, C, H, W), hdtype), rand(rng, (FN, C // groups, FH, FW), hdtype, 0.3), \
        rand(rng, FN, hdtype)
    out = ops.conv_forward(x, Wt, b, stride, pad, dilation=dilation, groups=groups)
    assert out.dtype == hdtype
    dout = rand(rng, out.shape, hdtype)
    (r_out, r_dx, r_dW, r_db), (m_out, m_dx, m_dW, m_db) = conv_ref(*f64(x, Wt, b, dout), case)
    OH, OW = out.shape[2:]
    k_fwd = C // groups * FH * FW + 1  # products per output, plus the bias
    assert_within(out, r_out, bound(r_out, hdtype, k_fwd * U32 * m_out), f"{isa} {case} out")
    dx, dW, db = ops.conv_backward(x, Wt, dout, stride, pad, dilation=dilation, groups=groups)
    assert dx.dtype == dW.dtype == db.dtype == hdtype
    k_dx, k_dW = FN // groups * FH * FW, N * OH * OW
    assert_within(dx, r_dx, bound(r_dx, hdtype, k_dx * U32 * m_dx), f"{isa} {case} dx")
    assert_within(dW, r_dW, bound(r_dW, hdtype, k_dW * U32 * m_dW), f"{isa} {case} dW")
    assert_within(db, r_db, bound(r_db, hdtype, k_dW * U32 * m_db), f"{isa} {case} db")
    _, dW2, db2 = ops.conv_backward(x, Wt, dout, stride, pad, dilation=dilation, groups=groups, need_dx=False)
    np.testing.assert_array_equal(dW2.view(np.uint16), dW.view(np.uint16))
    np.testing.assert_array_equal(db2.view(np.uint16), db.view(np.uint16))


# (37, 3, 10, 10): one staging chunk; (50, 16, 24, 24): 3 chunks on one thread, 4 on two (conv_half.cpp's
# forward_by_chunk follows the thread count), and 16 gradient slots of 3-4 images
@pytest.mark.parametrize("xshape, fshape", [((37, 3, 10, 10), (5, 3, 3, 3)), ((50, 16, 24, 24), (8, 16, 3, 3))])
def test_conv_threads_same_bits(rng, hdtype, xshape, fshape):
    oshape = (xshape[0], fshape[0], xshape[2] - fshape[2] + 1, xshape[3] - fshape[3] + 1)
    x, Wt, dout = rand(rng, xshape, hdtype), rand(rng, fshape, hdtype), rand(rng, oshape, hdtype)
    prev = fastconv.get_num_threads()
    got = []
    try:
        for t in (1, 2):
            fastconv.set_num_threads(t)
            got.append((ops.conv_forward(x, Wt, None), *ops.conv_backward(x, Wt, dout)))
    finally:
        fastconv.set_num_threads(prev)
    for a, b in zip(*got):
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


def test_conv_fused_relu(rng, hdtype):
    x, Wt, b = rand(rng, (2, 3, 6, 6), hdtype), rand(rng, (4, 3, 3, 3), hdtype), rand(rng, 4, hdtype)
    plain = ops.conv_forward(x, Wt, b, 1, 1)
    fused = ops.conv_forward(x, Wt, b, 1, 1, relu=True)
    np.testing.assert_array_equal(f64(fused), f64(ops.relu_forward(plain)))


# bfloat16 convolution by a tile program (csrc/cpu/conv_amx.h): on AMX where the CPU and OS offer AMX-BF16, on
# AVX512_BF16 dot products where the CPU has them, and emulated by scalar code (the same packing and loops) on
# every CPU

# (N, C, H, W, FN, FH, FW, pad), stride 1: channels and filters are padded to multiples of 16 with zeros
AMX_CASES = [
    (3, 16, 8, 8, 16, 3, 3, 1),
    (2, 32, 7, 7, 64, 3, 3, 1),
    (17, 16, 6, 5, 32, 2, 2, 0),  # an even filter; more images than weight-gradient slots
    (1, 16, 9, 7, 48, 3, 3, (0, 2, 1, 0)),  # one image, per-side padding
    (2, 32, 5, 6, 16, 5, 5, 2),
    (2, 48, 6, 5, 16, 1, 1, 0),
    (2, 16, 4, 4, 20, 3, 3, 1),  # 20 filters: the second filter block mostly padding
    (3, 2, 12, 12, 16, 3, 3, 1),  # two channels: 14 zero planes
    (2, 3, 9, 8, 5, 3, 3, 1),  # RGB-like: 3 channels, 5 filters
    (2, 20, 6, 6, 24, 3, 3, 1),  # ragged channel and filter blocks on both sides
    (2, 16, 5, 5, 16, 3, 3, 3),  # pad >= filter: the backward staged (its input gradient would pad by -1)
]


@pytest.fixture(params=["emulated", "amx", "avx512_bf16"])
def amx(request):
    """Each tile mode this machine has (amx and avx512_bf16 skipped without them); the previous mode is
    restored."""
    prev = fastconv._cpu.amx_mode()
    try:
        fastconv._cpu.set_amx_mode(request.param)
    except ValueError as exc:
        pytest.skip(str(exc))
    yield request.param
    fastconv._cpu.set_amx_mode(prev)


def amx_calls_expected(hdtype, C, FN, FH, FW, pad):
    """How many tile calls a forward and a backward make: bfloat16 one each (the backward where the padding
    is below the filter); float16 its forward and its input gradient (where that padding holds) where C and FN
    are at most 32 (conv_amx.cpp: f16_tiles_gain), its weight gradient never."""
    tiles_backward = (pad if isinstance(pad, int) else max(pad)) < min(FH, FW)
    if hdtype == BF16:
        return 1 + tiles_backward
    few = C <= 32 and FN <= 32
    return few + (tiles_backward and few)


@pytest.mark.parametrize("case", AMX_CASES, ids=[f"amx{i}" for i in range(len(AMX_CASES))])
def test_conv_amx(rng, amx, hdtype, case):
    """bfloat16, and float16 as exact bfloat16 halves (conv_amx.h: split_f16), against the reference."""
    N, C, H, W, FN, FH, FW, pad = case
    x, Wt, b = rand(rng, (N, C, H, W), hdtype), rand(rng, (FN, C, FH, FW), hdtype, 0.3), rand(rng, FN, hdtype)
    before = fastconv._cpu.amx_calls()
    out = ops.conv_forward(x, Wt, b, 1, pad)
    dout = rand(rng, out.shape, hdtype)
    dx, dW, db = ops.conv_backward(x, Wt, dout, 1, pad)
    assert fastconv._cpu.amx_calls() - before == amx_calls_expected(hdtype, C, FN, FH, FW, pad), \
        "the tiles ran as often as expected"
    (r_out, r_dx, r_dW, r_db), (m_out, m_dx, m_dW, m_db) = conv_ref(*f64(x, Wt, b, dout), (1, pad, 1, 1))
    OH, OW = out.shape[2:]
    assert_within(out, r_out, bound(r_out, hdtype, (C * FH * FW + 1) * U32 * m_out), f"{amx} {case} out")
    assert_within(dx, r_dx, bound(r_dx, hdtype, FN * FH * FW * U32 * m_dx), f"{amx} {case} dx")
    assert_within(dW, r_dW, bound(r_dW, hdtype, N * OH * OW * U32 * m_dW), f"{amx} {case} dW")
    assert_within(db, r_db, bound(r_db, hdtype, N * OH * OW * U32 * m_db), f"{amx} {case} db")
    # the fused ReLU is relu_forward of the plain result; the weight gradient alone is the same bits
    np.testing.assert_array_equal(f64(ops.conv_forward(x, Wt, b, 1, pad, relu=True)), f64(ops.relu_forward(out)))
    _, dW2, db2 = ops.conv_backward(x, Wt, dout, 1, pad, need_dx=False)
    np.testing.assert_array_equal(dW2.view(np.uint16), dW.view(np.uint16))
    np.testing.assert_array_equal(db2.view(np.uint16), db.view(np.uint16))


def test_conv_amx_f16_split_is_exact(rng, amx):
    """float16 on the tiles computes exact products (hi and lo halves, four tile steps): with a single term per
    output (a 1x1 filter, one nonzero channel) the result is the reference's product rounded once, bit for bit,
    for values across float16's range, subnormals included."""
    vals = np.concatenate([rand(rng, 200, F16), np.array([2**-24, 3 * 2**-24, 1023 * 2**-24, 2**-14, 65504, -2**-20,
                                                          1 + 2**-10, 2047 / 1024], np.float16)])
    x = np.zeros((1, 16, 1, vals.size), np.float16)
    x[0, 5, 0] = vals
    Wt = np.zeros((16, 16, 1, 1), np.float16)
    Wt[:, 5, 0, 0] = np.array([1, -1, 2**-10, 3, 1 + 2**-10, 0.1, 2**-24, 7, 65504, 1e-3, 1.5, -2.75, 0.3, 2, 2**-5,
                               1023 / 1024], np.float16)
    before = fastconv._cpu.amx_calls()
    out = ops.conv_forward(x, Wt, None)
    assert fastconv._cpu.amx_calls() - before == 1
    with np.errstate(over="ignore"):
        want = (Wt[:, 5, 0, 0].astype(np.float64)[:, None] * vals.astype(np.float64)[None, :]).astype(np.float16)
    np.testing.assert_array_equal(out[0, :, 0].view(np.uint16), want.view(np.uint16))


def test_conv_amx_one_channel_staged(rng, amx):
    """One input channel stays on the staged path (conv_amx.cpp: geometry_ok says why)."""
    x, Wt = rand(rng, (2, 1, 8, 8), BF16), rand(rng, (16, 1, 3, 3), BF16)
    before = fastconv._cpu.amx_calls()
    out = ops.conv_forward(x, Wt, None, 1, 1)
    ops.conv_backward(x, Wt, out, 1, 1)
    assert fastconv._cpu.amx_calls() == before


def test_conv_amx_threads_same_bits(rng, amx, hdtype):
    x, Wt = rand(rng, (37, 16, 6, 6), hdtype), rand(rng, (32, 16, 3, 3), hdtype)
    dout = rand(rng, (37, 32, 6, 6), hdtype)
    prev = fastconv.get_num_threads()
    got = []
    try:
        for t in (1, 2, 3):
            fastconv.set_num_threads(t)
            got.append((ops.conv_forward(x, Wt, None, 1, 1), *ops.conv_backward(x, Wt, dout, 1, 1)))
    finally:
        fastconv.set_num_threads(prev)
    for other in got[1:]:
        for a, b in zip(got[0], other):
            np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


@pytest.mark.parametrize("value", [np.inf, np.nan, 2.0**-130], ids=["inf", "nan", "subnormal"])
@pytest.mark.parametrize("where", ["x", "W", "dout"])
def test_conv_amx_nonfinite_staged(rng, amx, hdtype, where, value):
    """A non-finite input leaves the call to the staged float path (the tiles would pair an inf with a zero
    weight of the padded tap pairs or the padded pixels and make a NaN the reference does not have), and so
    does a bfloat16 subnormal one (the dot-product instructions read it as zero: an error of its whole
    product; 2**-130 is zero in float16, whose subnormals the split tiles take exactly)."""
    x, Wt = rand(rng, (2, 16, 5, 5), hdtype), rand(rng, (16, 16, 3, 3), hdtype)
    dout = rand(rng, (2, 16, 5, 5), hdtype)
    {"x": x, "W": Wt, "dout": dout}[where].reshape(-1)[7] = value
    staged = hdtype == BF16 or not np.isfinite(value)
    before = fastconv._cpu.amx_calls()
    got = (ops.conv_forward(x, Wt, None, 1, 1), *ops.conv_backward(x, Wt, dout, 1, 1))
    # float16: its forward (x and W) and its input gradient (W and dout) take the tiles unless a value is bad
    want_calls = {BF16: 1 if where == "dout" else 0,
                  F16: 2 - (where in ("x", "W")) - (where in ("W", "dout")) if staged else 2}[hdtype]
    assert fastconv._cpu.amx_calls() - before == want_calls
    if not staged:
        return
    fastconv._cpu.set_amx_mode("off")
    want = (ops.conv_forward(x, Wt, None, 1, 1), *ops.conv_backward(x, Wt, dout, 1, 1))
    # what was staged is the staged path's bits: the forward where x or W is bad, the input gradient where
    # bfloat16 has any bad value or float16 a bad W or dout, the weight and bias gradients always (float16's are
    # always staged)
    staged_parts = [where in ("x", "W"), hdtype == BF16 or where in ("W", "dout"), True, True]
    for a, b, st in zip(got, want, staged_parts):
        if st:
            np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


def test_conv_amx_any_bias(rng, amx):
    """The bias never goes through the tiles (it is added in float32 after them): an inf, a NaN or a subnormal
    bias keeps the call on the tiles and lands as in the reference."""
    x, Wt = rand(rng, (2, 16, 5, 5), BF16), rand(rng, (16, 16, 3, 3), BF16)
    b = rand(rng, 16, BF16)
    b[:3] = np.array([np.inf, np.nan, 2.0**-130], np.float32).astype(BF16)
    before = fastconv._cpu.amx_calls()
    out = ops.conv_forward(x, Wt, b, 1, 1)
    assert fastconv._cpu.amx_calls() - before == 1
    (r_out, *_), (m_out, *_) = conv_ref(*f64(x, Wt, b, np.zeros(out.shape, BF16)), (1, 1, 1, 1))
    assert_within(out, r_out, bound(r_out, BF16, (16 * 9 + 1) * U32 * m_out), f"{amx} bias")


def test_conv_amx_image_groups(rng, amx):
    """Images large enough that a weight-gradient slot packs its images in several groups (about 1 MiB of
    packed copies each): the tiles then add each group to the slot's partial sums (the accumulate path, which
    the small cases above never take). dout is sparse (about two pixels an image and filter): with K = N*OH*OW
    dense terms the float32 bound would exceed the gradient itself and miss a group left out."""
    N, C, H, W, FN, FH, FW = 17, 16, 128, 128, 16, 1, 2  # two images a slot, one image a group
    x, Wt, b = rand(rng, (N, C, H, W), BF16), rand(rng, (FN, C, FH, FW), BF16, 0.3), rand(rng, FN, BF16)
    shape = (N, FN, H - FH + 1, W - FW + 1)
    dout = (rand(rng, shape, BF16).astype(np.float32) * (rng.random(shape) < 2 / 8192)).astype(BF16)
    before = fastconv._cpu.amx_calls()
    dx, dW, db = ops.conv_backward(x, Wt, dout, 1, 0)
    assert fastconv._cpu.amx_calls() - before == 1
    (_, r_dx, r_dW, r_db), (_, m_dx, m_dW, m_db) = conv_ref(*f64(x, Wt, b, dout), (1, 0, 1, 1))
    k = N * dout.shape[2] * dout.shape[3]
    assert_within(dx, r_dx, bound(r_dx, BF16, FN * FH * FW * U32 * m_dx), f"{amx} dx")
    assert_within(dW, r_dW, bound(r_dW, BF16, k * U32 * m_dW), f"{amx} dW")
    assert_within(db, r_db, bound(r_db, BF16, k * U32 * m_db), f"{amx} db")


@pytest.mark.parametrize("mode", ["amx", "avx512_bf16"])
def test_conv_amx_not_below_avx512(rng, mode):
    """The hardware tile modes run only while the GEMM ISA is avx512 (FASTCONV_ISA=avx2 or set_cpu_isa lowers
    it): below it the bfloat16 convolution stays on the staged float path."""
    prev, prev_isa = fastconv._cpu.amx_mode(), fastconv._cpu.cpu_isa()
    try:
        try:
            fastconv._cpu.set_amx_mode(mode)
            fastconv._cpu.set_cpu_isa("avx2")
        except ValueError as exc:
            pytest.skip(str(exc))
        x, Wt = rand(rng, (2, 16, 5, 5), BF16), rand(rng, (16, 16, 3, 3), BF16)
        before = fastconv._cpu.amx_calls()
        ops.conv_forward(x, Wt, None, 1, 1)
        ops.conv_backward(x, Wt, rand(rng, (2, 16, 5, 5), BF16), 1, 1)
        assert fastconv._cpu.amx_calls() == before
    finally:
        fastconv._cpu.set_cpu_isa(prev_isa)
        fastconv._cpu.set_amx_mode(prev)


@pytest.mark.parametrize("M,N,K", [(33, 50, 70), (100, 50, 1024), (5, 300, 40), (64, 257, 33)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_gemm_amx(rng, amx, M, N, K, ta, tb):
    """bfloat16 GEMM on the tile program (csrc/cpu/gemm/gemm_amx.cpp): ragged blocks, transposed operands,
    alpha and beta, and an inf and a NaN that must land where the reference puts them."""
    a = rand(rng, (K, M) if ta else (M, K), BF16)
    b = rand(rng, (N, K) if tb else (K, N), BF16)
    a[(1, 2) if ta else (2, 1)] = np.inf
    b[(3, 4) if tb else (4, 3)] = np.nan
    c0 = rand(rng, (M, N), BF16)
    out = c0.copy()
    before = fastconv._cpu.amx_calls()
    ops.gemm(a, b, trans_a=ta, trans_b=tb, alpha=0.5, beta=-1.5, out=out)
    assert fastconv._cpu.amx_calls() - before == 1
    with np.errstate(invalid="ignore"):
        ref = 0.5 * gemm_ref(a, b, ta, tb) + -1.5 * f64(c0)
        mag = 0.5 * gemm_ref(np.abs(f64(a)), np.abs(f64(b)), ta, tb) + 1.5 * np.abs(f64(c0))
    assert_within(out, ref, bound(ref, BF16, (K + 3) * U32 * mag), f"{amx} {M}x{N}x{K}")


@pytest.mark.parametrize("ta,tb", [(True, False), (False, True)])
def test_gemm_amx_beta_zero_ignores_out(rng, amx, ta, tb):
    """beta == 0 on the tile program: out is write-only (NaN and inf already there must not leak, as for
    float32), with the two mixed transposes."""
    M, N, K = 45, 70, 33
    a = rand(rng, (K, M) if ta else (M, K), BF16)
    b = rand(rng, (N, K) if tb else (K, N), BF16)
    ref = 1.5 * gemm_ref(a, b, ta, tb)
    mag = 1.5 * gemm_ref(np.abs(f64(a)), np.abs(f64(b)), ta, tb)
    for fill in (np.nan, np.inf):
        out = np.full((M, N), fill, dtype=BF16)
        before = fastconv._cpu.amx_calls()
        ops.gemm(a, b, trans_a=ta, trans_b=tb, alpha=1.5, beta=0.0, out=out)
        assert fastconv._cpu.amx_calls() - before == 1
        assert_within(out, ref, bound(ref, BF16, (K + 2) * U32 * mag), f"{amx} {fill}")


def test_gemm_amx_threads_same_bits(rng, amx):
    a, b = rand(rng, (70, 300), BF16), rand(rng, (300, 530), BF16)
    got = []
    prev = fastconv.get_num_threads()
    try:
        for t in (1, 2, 3):
            fastconv.set_num_threads(t)
            got.append(ops.gemm(a, b))
    finally:
        fastconv.set_num_threads(prev)
    for other in got[1:]:
        np.testing.assert_array_equal(got[0].view(np.uint16), other.view(np.uint16))


@pytest.mark.parametrize("op", ["conv", "gemm"])
def test_amx_tiny_products_staged(rng, amx, op):
    """Operands whose products could fall below 2**-126 (here 2**-64 by 2**-64: the tiles would flush them to
    zero) stay on the staged path, which keeps them, and the results are the reference's."""
    tiny = np.float32(2.0**-64)
    if op == "gemm":
        a, b = (rand(rng, (40, 64), BF16).astype(np.float32) * tiny).astype(BF16), rand(rng, (64, 50), BF16)
        b = (b.astype(np.float32) * tiny).astype(BF16)
        before = fastconv._cpu.amx_calls()
        out = ops.gemm(a, b)
        assert fastconv._cpu.amx_calls() == before
        ref = gemm_ref(a, b, False, False)
        acc = 64 * U32 * gemm_ref(np.abs(f64(a)), np.abs(f64(b)), False, False)
        assert np.any(ref != 0) and np.all(np.abs(ref[ref != 0]) < 2.0**-118)
        assert_within(out, ref, bound(ref, BF16, acc), f"{amx} tiny gemm")
        return
    x = (rand(rng, (2, 16, 5, 5), BF16).astype(np.float32) * tiny).astype(BF16)
    Wt = (rand(rng, (16, 16, 3, 3), BF16).astype(np.float32) * tiny).astype(BF16)
    before = fastconv._cpu.amx_calls()
    out = ops.conv_forward(x, Wt, None, 1, 1)
    assert fastconv._cpu.amx_calls() == before
    (r_out, *_), (m_out, *_) = conv_ref(*f64(x, Wt, np.zeros(16, BF16), np.zeros(out.shape, BF16)), (1, 1, 1, 1))
    assert np.any(r_out != 0)
    assert_within(out, r_out, bound(r_out, BF16, 16 * 9 * U32 * m_out), f"{amx} tiny conv")


def test_amx_mode_errors():
    with pytest.raises(ValueError, match="amx: expected 'off', 'amx', 'avx512_bf16' or 'emulated'"):
        fastconv._cpu.set_amx_mode("fast")
    assert fastconv.info()["amx_mode"] == fastconv._cpu.amx_mode()


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1)])
def test_deconv(rng, isa, hdtype, stride, pad):
    x, Wt, b = rand(rng, (3, 4, 5, 5), hdtype), rand(rng, (4, 3, 3, 3), hdtype, 0.3), rand(rng, 3, hdtype)
    y = ops.deconv_forward(x, Wt, b, stride, pad)
    dy = rand(rng, y.shape, hdtype)
    res = []
    for xa, Wa, ba, da in (f64(x, Wt, b, dy), (np.abs(f64(x)), np.abs(f64(Wt)), np.abs(f64(b)), np.abs(f64(dy)))):
        ref = ref_layers.Deconvolution(Wa, ba, stride, pad)
        res.append((ref.forward(xa), ref.backward(da), ref.dW, ref.db))
    (r_y, r_dx, r_dW, r_db), (m_y, m_dx, m_dW, m_db) = res
    assert y.dtype == hdtype
    assert_within(y, r_y, bound(r_y, hdtype, (4 * 9 + 1) * U32 * m_y), f"{isa} y")
    dx, dW, db = ops.deconv_backward(x, Wt, dy, stride, pad)
    assert_within(dx, r_dx, bound(r_dx, hdtype, 3 * 9 * U32 * m_dx), f"{isa} dx")
    k = 3 * y.shape[2] * y.shape[3]
    assert_within(dW, r_dW, bound(r_dW, hdtype, k * U32 * m_dW), f"{isa} dW")
    assert_within(db, r_db, bound(r_db, hdtype, k * U32 * m_db), f"{isa} db")


def test_convolution_layer(rng, hdtype):
    """The book's Convolution layer runs in the 16-bit type and keeps it."""
    Wt, b, x = rand(rng, (4, 3, 3, 3), hdtype), rand(rng, 4, hdtype), rand(rng, (2, 3, 8, 8), hdtype)
    layer = layers.Convolution(Wt, b, stride=1, pad=1)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.dW.dtype == layer.db.dtype == hdtype


# ======================================================================================================
# pooling, softmax with loss, dropout


@pytest.mark.parametrize("shape,ph,pw,stride,pad", [((2, 3, 8, 8), 2, 2, 2, 0), ((3, 2, 7, 9), 3, 3, 2, 1),
                                                   ((1, 1, 5, 5), 3, 3, 1, 1)])
def test_pooling(rng, isa, hdtype, shape, ph, pw, stride, pad):
    x = rand(rng, shape, hdtype)
    # max pooling: the maximum is one of the inputs (exact); the backward sums dout where windows overlap
    out, argmax = ops.maxpool_forward(x, ph, pw, stride, pad)
    ref = ref_layers.Pooling(ph, pw, stride, pad)
    want = ref.forward(f64(x))
    assert out.dtype == hdtype
    np.testing.assert_array_equal(f64(out), want, err_msg=isa)
    inf_out, no_argmax = ops.maxpool_forward(x, ph, pw, stride, pad, keep_argmax=False)  # inference
    assert no_argmax is None
    np.testing.assert_array_equal(f64(inf_out), want, err_msg=isa)
    dout = rand(rng, out.shape, hdtype)
    dx = ops.maxpool_backward(dout, argmax, x.shape, ph, pw, stride, pad)
    rdx = ref.backward(f64(dout))
    k = int(np.ceil(ph / stride) * np.ceil(pw / stride))  # windows that can share an input position
    mag = ref_layers.Pooling(ph, pw, stride, pad)
    mag.forward(f64(x))
    assert_within(dx, rdx, bound(rdx, hdtype, k * U32 * mag.backward(np.abs(f64(dout)))), f"{isa} max dx")
    # average pooling: ph*pw values summed and divided in float32
    aref = ref_layers.AvgPooling(ph, pw, stride, pad)
    a_want = aref.forward(f64(x))
    a_out = ops.avgpool_forward(x, ph, pw, stride, pad)
    a_mag = ref_layers.AvgPooling(ph, pw, stride, pad).forward(np.abs(f64(x)))
    assert_within(a_out, a_want, bound(a_want, hdtype, (ph * pw + 1) * U32 * a_mag), f"{isa} avg out")
    a_dx = ops.avgpool_backward(dout, x.shape, ph, pw, stride, pad)
    a_rdx = aref.backward(f64(dout))
    a_dmag = ref_layers.AvgPooling(ph, pw, stride, pad)
    a_dmag.forward(f64(x))
    assert_within(a_dx, a_rdx, bound(a_rdx, hdtype, (k + 1) * U32 * a_dmag.backward(np.abs(f64(dout)))),
                  f"{isa} avg dx")


def test_pooling_many_chunks(rng, hdtype):
    """A batch of several chunks of whole planes spread over the threads (csrc/cpu/pool_half.cpp): the
    reference's values, the same bits for any thread count, and of several bad argmax values in different
    chunks the first (lowest flat index) reported, whichever thread finds its own first."""
    x = rand(rng, (5, 2000, 4, 4), hdtype)  # 10000 planes of 16 values: chunks of 4096, 4096 and 1808 planes
    ref = ref_layers.Pooling(2, 2, 2, 0)
    want = ref.forward(f64(x))
    dout = rand(rng, want.shape, hdtype)
    want_dx = ref.backward(f64(dout))  # windows do not overlap: dx is dout at the argmax, exact
    aref = ref_layers.AvgPooling(2, 2, 2, 0)
    a_want = aref.forward(f64(x))
    a_mag = ref_layers.AvgPooling(2, 2, 2, 0).forward(np.abs(f64(x)))
    a_want_dx = aref.backward(f64(dout))
    prev = fastconv.get_num_threads()
    got = []
    try:
        for t in (1, 2, 3):
            fastconv.set_num_threads(t)
            out, argmax = ops.maxpool_forward(x, 2, 2, 2, 0)
            dx = ops.maxpool_backward(dout, argmax, x.shape, 2, 2, 2, 0)
            a_out = ops.avgpool_forward(x, 2, 2, 2, 0)
            a_dx = ops.avgpool_backward(dout, x.shape, 2, 2, 2, 0)
            np.testing.assert_array_equal(f64(out), want, err_msg=f"{t} threads: max out")
            np.testing.assert_array_equal(f64(dx), want_dx, err_msg=f"{t} threads: max dx")
            assert_within(a_out, a_want, bound(a_want, hdtype, 5 * U32 * a_mag), f"{t} threads: avg out")
            assert_within(a_dx, a_want_dx, bound(a_want_dx, hdtype, 2 * U32 * np.abs(a_want_dx)), f"{t}: avg dx")
            got.append((out, dx, a_out, a_dx))
            # out of range [0, 16) in the last plane of chunk 0 (found last by its thread), the first plane of
            # chunk 1 and a plane of chunk 2: flat index 4095 * 4 + 3 is the one to report
            bad = argmax.copy().reshape(-1)
            bad[[4095 * 4 + 3, 4096 * 4, 8200 * 4 + 1]] = 16
            for _ in range(5):
                with pytest.raises(ValueError, match=r"^argmax: value 16 at flat index 16383 is out of range"):
                    ops.maxpool_backward(dout, bad.reshape(argmax.shape), x.shape, 2, 2, 2, 0)
    finally:
        fastconv.set_num_threads(prev)
    for other in got[1:]:
        for a, b in zip(got[0], other):
            np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


@pytest.mark.parametrize("N,K", [(1, 3), (7, 10), (100, 10), (3, 1000)])
def test_softmax_with_loss(rng, hdtype, N, K):
    x = rand(rng, (N, K), hdtype, 3.0)
    t = rng.integers(0, K, N)
    loss, y = ops.softmax_cross_entropy(x, t)
    ref = ref_layers.SoftmaxWithLoss()
    r_loss = ref.forward(f64(x), t)
    c = 4 * U32 * K  # the float32 softmax: K terms in the sum, exp and the division a few ulps each
    assert y.dtype == hdtype
    assert_within(y, ref.y, bound(ref.y, hdtype, c * np.abs(ref.y)), "y")
    # the loss is taken from the float32 probabilities in double: relative error c of each y, absolute in log
    assert abs(loss - r_loss) <= c + 1e-12, (loss, r_loss)
    dx = ops.softmax_cross_entropy_backward(y, t)
    # the backward of the kernel's own (rounded) y, as a layer runs it: (y - onehot) / N in float32
    onehot = np.zeros((N, K))
    onehot[np.arange(N), t] = 1
    rdx = (f64(y) - onehot) / N
    assert_within(dx, rdx, bound(rdx, hdtype, 3 * U32 * np.abs(rdx)), "dx")
    s = ops.softmax(x)
    assert_within(s, ref.y, bound(ref.y, hdtype, c * np.abs(ref.y)), "softmax")
    # dense one-hot targets of the same dtype give the same probabilities and loss
    loss_d, y_d = ops.softmax_cross_entropy(x, onehot.astype(hdtype))
    np.testing.assert_array_equal(y_d.view(np.uint16), y.view(np.uint16))
    assert abs(loss_d - r_loss) <= c + 1e-12


def test_dropout_same_mask_as_float32(rng, hdtype):
    x = np.concatenate([rand(rng, 5000, hdtype), special_values(hdtype)])
    out, mask = ops.dropout_forward(x, 0.3, 1234)
    out32, mask32 = ops.dropout_forward(x.astype(np.float32), 0.3, 1234)
    np.testing.assert_array_equal(mask, mask32)
    assert out.dtype == hdtype
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, in the kernel as here
        np.testing.assert_array_equal(f64(out), f64(x) * mask)  # exact: x or 0 (NaN * 0 stays NaN)
    dout = rand(rng, x.shape, hdtype)
    np.testing.assert_array_equal(f64(ops.dropout_backward(dout, mask)), f64(dout) * mask)


def test_layers_of_the_book_in_half(rng, hdtype):
    """Convolution, Relu, Pooling, Affine, Dropout and SoftmaxWithLoss run a small network in the 16-bit type."""
    x = rand(rng, (4, 1, 8, 8), hdtype)
    conv = layers.Convolution(rand(rng, (3, 1, 3, 3), hdtype, 0.3), rand(rng, 3, hdtype, 0.1), 1, 1)
    relu, pool = layers.Relu(), layers.Pooling(2, 2, 2)
    drop = layers.Dropout(0.2)
    aff = layers.Affine(rand(rng, (48, 5), hdtype, 0.1), rand(rng, 5, hdtype, 0.1))
    loss_layer = layers.SoftmaxWithLoss()
    h = pool.forward(relu.forward(conv.forward(x)))
    h = drop.forward(h.reshape(4, -1), train_flg=True)
    loss = loss_layer.forward(aff.forward(h), np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)
    d = aff.backward(loss_layer.backward())
    d = pool.backward(drop.backward(d).reshape(4, 3, 4, 4))
    conv.backward(relu.backward(d))
    for a in (conv.dW, conv.db, aff.dW, aff.db):
        assert a.dtype == hdtype


def test_deepconvnet_in_half(rng, hdtype):
    """DeepConvNet(dtype=...) computes in the 16-bit type; with the float32 network's parameters rounded, its loss
    is the float32 loss within the 16-bit rounding of 16 layers' activations (a loose, not a derived, check: the
    per-op bounds above are the precise ones)."""
    from fastconv import models

    np.random.seed(3)
    net32 = models.DeepConvNet(dtype=np.float32)
    net16 = models.DeepConvNet(dtype=hdtype)
    for k, v in net32.params.items():
        net16.params[k][...] = v.astype(hdtype)
        net32.params[k][...] = net16.params[k].astype(np.float32)  # both on the same rounded parameters
    x = rng.random((8, 1, 28, 28)).astype(hdtype)
    t = np.arange(8)
    # inference mode: no dropout masks (in training mode each network would draw its own)
    y16 = net16.predict(x, train_flg=False)
    y32 = net32.predict(x.astype(np.float32), train_flg=False)
    assert y16.dtype == hdtype
    l16, l32 = (ref_layers.SoftmaxWithLoss().forward(f64(y), t) for y in (y16, y32))
    assert abs(l16 - l32) <= 50 * U_STORE[hdtype] * abs(l32), (l16, l32)
    grads = net16.gradient(x, t)
    assert all(g.dtype == hdtype and np.all(np.isfinite(f64(g))) for g in grads.values())


# ======================================================================================================
# data movement: im2col (a copy), col2im (sums in float32), zero padding and cropping (copies)
# A copy moves the 16-bit values unchanged, so those results equal the reference exactly.


@pytest.mark.parametrize("shape,fh,fw,stride,pad", [((2, 3, 7, 7), 3, 3, 1, 1), ((1, 2, 6, 9), 2, 3, 2, 0),
                                                   ((3, 1, 5, 5), 3, 3, 1, 2)])
def test_im2col_col2im(rng, hdtype, shape, fh, fw, stride, pad):
    x = np.concatenate([rand(rng, shape, hdtype).ravel()[:-4], special_values(hdtype)[:4]]).reshape(shape)
    col = util.im2col(x, fh, fw, stride, pad)
    assert col.dtype == hdtype
    want = ref_util.im2col(f64(x), fh, fw, stride, pad)
    np.testing.assert_array_equal(f64(col), want)
    c = rand(rng, col.shape, hdtype)
    back = util.col2im(c, shape, fh, fw, stride, pad)
    assert back.dtype == hdtype
    r_back = ref_util.col2im(f64(c), shape, fh, fw, stride, pad)
    k = -(-fh // stride) * -(-fw // stride)  # windows that can cover one input position: terms of its sum
    mag = ref_util.col2im(np.abs(f64(c)), shape, fh, fw, stride, pad)
    assert_within(back, r_back, bound(r_back, hdtype, k * U32 * mag), "col2im")


def test_col2im_threads_same_bits(rng, hdtype):
    c = rand(rng, (37 * 64, 3 * 9), hdtype)
    prev = fastconv.get_num_threads()
    got = []
    try:
        for t in (1, 2):
            fastconv.set_num_threads(t)
            got.append(util.col2im(c, (37, 3, 10, 10), 3, 3, 1, 0))
    finally:
        fastconv.set_num_threads(prev)
    np.testing.assert_array_equal(got[0].view(np.uint16), got[1].view(np.uint16))


@pytest.mark.parametrize("pad", [1, (2, 0), (0, 1, 2, 3)])
def test_zeropad_crop_exact(rng, hdtype, pad):
    x = np.concatenate([rand(rng, 2 * 3 * 5 * 4 - 9, hdtype), special_values(hdtype)]).reshape(2, 3, 5, 4)
    out = ops.zeropad(x, pad)
    want = ref_layers.ZeroPadding(pad).forward(f64(x))
    assert out.dtype == hdtype
    np.testing.assert_array_equal(f64(out), want)
    back = ops.crop(out, pad)
    assert back.dtype == hdtype
    np.testing.assert_array_equal(back.view(np.uint16), x.view(np.uint16))  # bits, NaN payloads and -0 kept
    for layer in (layers.ZeroPadding(pad), layers.Cropping(pad)):
        y = layer.forward(x if isinstance(layer, layers.ZeroPadding) else out)
        assert y.dtype == layer.backward(np.ones_like(y)).dtype == hdtype


# ======================================================================================================
# global pooling and upsampling


def test_double_results_rounded_once(hdtype):
    """Kernels that sum in double round the double once to the 16-bit type: the mean lies just above a tie of
    the 16-bit type, less than half a float32 ulp above it, so a double -> float32 -> 16-bit path lands on the
    tie and rounds it to even, one step too low."""
    if hdtype == np.float16:  # mean 512.25 + 2**-16: above the tie of 512 and 512.5 (float16's step is 0.5)
        x, want = [2048.0, 1.0, 2.0**-14, 0.0], 512.5
    else:  # mean 1 + 2**-8 + 2**-30: above the tie of 1 and 1 + 2**-7 (bfloat16's step)
        x, want = [4.0, 2.0**-6, 2.0**-28, 0.0], 1.0 + 2.0**-7
    x = np.array(x).astype(hdtype).reshape(1, 1, 2, 2)
    assert np.array_equal(f64(x).ravel(), np.array(x.ravel(), np.float64))  # the inputs are exact
    out = ops.global_avgpool_forward(x)
    assert out.dtype == hdtype and f64(out)[0, 0] == want


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (3, 4, 16, 16)])
def test_global_pooling(rng, hdtype, shape):
    x = rand(rng, shape, hdtype)
    # average: an H*W-term sum in double, rounded through float32 (one float32 rounding) and then once more
    avg = ops.global_avgpool_forward(x)
    ref = ref_layers.GlobalAvgPooling()
    want = ref.forward(f64(x))
    assert avg.dtype == hdtype
    assert_within(avg, want, bound(want, hdtype, 2 * U32 * np.abs(f64(x)).mean(axis=(2, 3))), "avg")
    dout = rand(rng, shape[:2], hdtype)
    dx = ops.global_avgpool_backward(dout, shape)
    rdx = ref.backward(f64(dout))
    assert dx.dtype == hdtype
    assert_within(dx, rdx, bound(rdx, hdtype, 2 * U32 * np.abs(rdx)), "avg dx")
    # max: the maximum is one of the inputs and the backward a copy, both exact
    mx, argmax = ops.global_maxpool_forward(x)
    mref = ref_layers.GlobalMaxPooling()
    np.testing.assert_array_equal(f64(mx), mref.forward(f64(x)))
    np.testing.assert_array_equal(argmax, mref.arg_max)
    mdx = ops.global_maxpool_backward(dout, argmax, shape)
    assert mx.dtype == mdx.dtype == hdtype
    np.testing.assert_array_equal(f64(mdx), mref.backward(f64(dout)))


def test_global_maxpool_nan_and_ties(hdtype):
    x = np.array([[[[1.0, 3.0], [3.0, -1.0]], [[2.0, np.nan], [5.0, np.nan]]]], np.float32).astype(hdtype)
    out, argmax = ops.global_maxpool_forward(x)
    np.testing.assert_array_equal(argmax, [[1, 1]])  # the first of equal values, the first NaN (np.argmax)
    assert f64(out)[0, 0] == 3.0 and np.isnan(f64(out)[0, 1])


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [2, (3, 1), (1, 4)])
def test_upsampling(rng, isa, hdtype, mode, scale):
    shape = (2, 3, 5, 4)
    x = rand(rng, shape, hdtype)
    sh, sw = scale if isinstance(scale, tuple) else (scale, scale)
    out = ops.upsample_forward(x, scale, mode)
    ref = ref_layers.Upsampling(scale, mode)
    want = ref.forward(f64(x))
    assert out.dtype == hdtype
    mag = ref_layers.Upsampling(scale, mode).forward(np.abs(f64(x)))
    if mode == "nearest":
        np.testing.assert_array_equal(f64(out), want)  # a copy
    else:
        # two float32 weights per axis (each within one rounding of the exact weight), four products and
        # three sums: a handful of roundings of terms bounded by the blend of |x|
        assert_within(out, want, bound(want, hdtype, 8 * U32 * mag), f"{isa} {mode} out")
    dout = rand(rng, out.shape, hdtype)
    dx = ops.upsample_backward(dout, shape, scale, mode)
    rdx = ref.backward(f64(dout))
    dmag = ref.backward(np.abs(f64(dout)))
    # every input sums the outputs it reaches: sh*sw of them (nearest), at most (2*sh)*(2*sw) (bilinear), each
    # term a product of float32 weights (a few roundings more)
    k = sh * sw if mode == "nearest" else 4 * sh * sw + 6
    assert dx.dtype == hdtype
    assert_within(dx, rdx, bound(rdx, hdtype, k * U32 * dmag), f"{isa} {mode} dx")


# ======================================================================================================
# batch normalization: the book's (N, D) form and the spatial (per-channel) form. The statistics are summed in
# double (never in 16 bits); each float32 operation of the formulas adds at most one float32 rounding of the
# size of the terms it combines, so the bounds count the operations of each formula (the comments list them).


def bn_forward_magnitude(x, gamma, beta, mu, sd):
    """|gamma| * (|x| + |mu|) / sd + |beta|: the size of every term in the forward formula."""
    return np.abs(gamma) * (np.abs(x) + np.abs(mu)) / sd + np.abs(beta)


@pytest.mark.parametrize("N,D", [(1, 1), (7, 13), (64, 130)])
def test_batchnorm(rng, hdtype, N, D):
    x, gamma, beta = rand(rng, (N, D), hdtype, 2.0), rand(rng, D, hdtype), rand(rng, D, hdtype)
    x = (f64(x) + 3.0).astype(hdtype)  # a mean away from zero: x - mu cancels
    rm, rv = rand(rng, D, hdtype), np.abs(rand(rng, D, hdtype))
    rm0, rv0 = rm.copy(), rv.copy()
    out, xc, xn, std = ops.batchnorm_forward_train(x, gamma, beta, rm, rv, 0.9)
    assert {out.dtype, xc.dtype, xn.dtype, std.dtype, rm.dtype, rv.dtype} == {hdtype}
    ref = ref_layers.BatchNormalization(*f64(gamma, beta), 0.9, *f64(rm0, rv0))
    want = ref.forward(f64(x))
    g, b = f64(gamma, beta)
    mu = f64(x).mean(axis=0)
    ac, sd, axn = np.abs(ref.xc), ref.std, np.abs(ref.xn)
    var = (ref.xc**2).mean(axis=0)
    # first-order error of each float32 step (the column sums are in double, exact to far below U32):
    # mu is rounded once (U32 |mu|), so xc = x - mu is within U32 (|xc| + |mu|); the variance sums xc**2 in
    # double (2 |xc| times the error of xc) and is rounded once; std = sqrt(var + eps) halves the variance's
    # relative error and adds two roundings; xn = xc / std, then out = gamma * xn + beta, two more
    e_xc = U32 * (ac + np.abs(mu))
    e_var = U32 * (3 * var + 2 * np.abs(mu) * ac.mean(axis=0))
    e_sd = e_var / (2 * sd) + 2 * U32 * sd
    e_xn = (e_xc + axn * e_sd) / sd + U32 * axn
    e_out = np.abs(g) * e_xn + 2 * U32 * (np.abs(g) * axn + np.abs(b))
    assert_within(out, want, bound(want, hdtype, e_out), "out")
    assert_within(xn, ref.xn, bound(ref.xn, hdtype, e_xn), "xn")
    assert_within(xc, ref.xc, bound(ref.xc, hdtype, e_xc), "xc")
    assert_within(std, sd, bound(sd, hdtype, e_sd), "std")
    # running = 0.9 * running + 0.1 * batch: the two float32 constants, two products and a sum
    assert_within(rm, ref.running_mean, bound(ref.running_mean, hdtype, U32 * (4 * np.abs(f64(rm0)) +
                                                                                 5 * np.abs(mu))), "running_mean")
    assert_within(rv, ref.running_var, bound(ref.running_var, hdtype, 0.1 * e_var + 4 * U32 * (f64(rv0) + var)),
                  "running_var")
    # inference with the running statistics just written
    inf = ops.batchnorm_forward_infer(x, gamma, beta, rm, rv)
    iref = ref_layers.BatchNormalization(*f64(gamma, beta), 0.9, *f64(rm, rv))
    iwant = iref.forward(f64(x), train_flg=False)
    isd = np.sqrt(f64(rv) + 1e-6)
    # x - mean, + eps, sqrt, division, product, sum: 6 roundings
    assert_within(inf, iwant, bound(iwant, hdtype, 6 * U32 * bn_forward_magnitude(f64(x), f64(gamma), f64(beta),
                                                                                  f64(rm), isd)), "infer")
    # backward on the kernel's own stored xc, xn, std (as the layer runs it)
    dout = rand(rng, (N, D), hdtype)
    dx, dgamma, dbeta = ops.batchnorm_backward(dout, xc, xn, std, gamma)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == hdtype
    g, d, c, n_, s = f64(gamma), f64(dout), f64(xc), f64(xn), f64(std)
    rb = ref_layers.BatchNormalization(g, f64(beta))
    rb.batch_size, rb.xc, rb.xn, rb.std = N, c, n_, s
    rdx = rb.backward(d)
    assert_within(dbeta, rb.dbeta, bound(rb.dbeta, hdtype, U32 * np.abs(d).sum(0)), "dbeta")
    assert_within(dgamma, rb.dgamma, bound(rb.dgamma, hdtype, 2 * U32 * np.abs(n_ * d).sum(0)), "dgamma")
    # the same chain rule on magnitudes: every term of dx and of its column sums. The longest chain is the
    # dvar term: dvar takes 6 float32 roundings (gamma * dout, * xc, std**2, the quotient, the column sum
    # rounded, / std), then 2 / N, its product with xc, the product with dvar, the sum with dxn / std and the
    # subtraction of dmu / N: 11 in all; 12 bounds every term
    a_dxn = np.abs(g * d)
    m_dvar = 0.5 * (a_dxn * np.abs(c)).sum(0) / s**3
    m_dxc = a_dxn / s + (2.0 / N) * np.abs(c) * m_dvar
    mag_dx = m_dxc + m_dxc.sum(0) / N
    assert_within(dx, rdx, bound(rdx, hdtype, 12 * U32 * mag_dx), "dx")


@pytest.mark.parametrize("shape", [(1, 1, 1, 2), (2, 3, 5, 7), (4, 8, 6, 6)])
def test_spatial_batchnorm(rng, hdtype, shape):
    """The spatial kernels compute in double from the widened inputs: their results are the double formulas
    rounded through float32 (one float32 rounding) and then to the type; double's own error (2**-53 per
    operation, N*H*W terms at most) is counted as one more float32 rounding."""
    C = shape[1]
    x = (f64(rand(rng, shape, hdtype, 2.0)) + 5.0).astype(hdtype)
    gamma, beta = rand(rng, C, hdtype), rand(rng, C, hdtype)
    rm, rv = rand(rng, C, hdtype), np.abs(rand(rng, C, hdtype))
    rm0, rv0 = rm.copy(), rv.copy()
    out, mean, invstd = ops.spatial_batchnorm_forward_train(x, gamma, beta, rm, rv, 0.9, 1e-5)
    assert out.dtype == rm.dtype == rv.dtype == hdtype and mean.dtype == np.float64
    ref = ref_layers.SpatialBatchNormalization(*f64(gamma, beta), 0.9, 1e-5, *f64(rm0, rv0))
    want = ref.forward(f64(x))
    cshape = (1, C, 1, 1)
    mu = f64(x).mean(axis=(0, 2, 3))
    mag = bn_forward_magnitude(f64(x), f64(gamma).reshape(cshape), f64(beta).reshape(cshape),
                               mu.reshape(cshape), ref.std.reshape(cshape))
    assert_within(out, want, bound(want, hdtype, 2 * U32 * mag), "out")
    np.testing.assert_allclose(mean, mu, rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / ref.std, rtol=1e-12)
    var = ref.std**2 - 1e-5
    assert_within(rm, ref.running_mean, bound(ref.running_mean, hdtype, 2 * U32 * (np.abs(f64(rm0)) + np.abs(mu))),
                  "running_mean")
    assert_within(rv, ref.running_var, bound(ref.running_var, hdtype, 2 * U32 * (f64(rv0) + var)), "running_var")
    inf = ops.spatial_batchnorm_forward_infer(x, gamma, beta, rm, rv, 1e-5)
    iref = ref_layers.SpatialBatchNormalization(*f64(gamma, beta), 0.9, 1e-5, *f64(rm, rv))
    iwant = iref.forward(f64(x), train_flg=False)
    imag = bn_forward_magnitude(f64(x), f64(gamma).reshape(cshape), f64(beta).reshape(cshape),
                                f64(rm).reshape(cshape), np.sqrt(f64(rv) + 1e-5).reshape(cshape))
    assert_within(inf, iwant, bound(iwant, hdtype, 2 * U32 * imag), "infer")
    dout = rand(rng, shape, hdtype)
    dx, dgamma, dbeta = ops.spatial_batchnorm_backward(dout, x, mean, invstd, gamma)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == hdtype
    rdx = ref.backward(f64(dout))
    ad = np.abs(f64(dout))
    assert_within(dbeta, ref.dbeta, bound(ref.dbeta, hdtype, 2 * U32 * ad.sum(axis=(0, 2, 3))), "dbeta")
    axn = np.abs(ref.xn)
    assert_within(dgamma, ref.dgamma, bound(ref.dgamma, hdtype, 2 * U32 * (axn * ad).sum(axis=(0, 2, 3))),
                  "dgamma")
    M = shape[0] * shape[2] * shape[3]
    a = (np.abs(f64(gamma)) / ref.std).reshape(cshape)
    mag_dx = a * (ad + axn * (axn * ad).sum(axis=(0, 2, 3), keepdims=True) / M + ad.sum(axis=(0, 2, 3),
                                                                                          keepdims=True) / M)
    assert_within(dx, rdx, bound(rdx, hdtype, 2 * U32 * mag_dx), "dx")


def test_batchnorm_layers_keep_dtype(rng, hdtype):
    """The layers create their running statistics in the input's 16-bit type and train and infer in it."""
    for layer, x in ((layers.BatchNormalization(rand(rng, 12, hdtype), rand(rng, 12, hdtype)),
                      rand(rng, (5, 3, 2, 2), hdtype)),
                     (layers.SpatialBatchNormalization(rand(rng, 3, hdtype), rand(rng, 3, hdtype)),
                      rand(rng, (5, 3, 2, 2), hdtype))):
        out = layer.forward(x, train_flg=True)
        dx = layer.backward(np.ones_like(out))
        assert out.dtype == dx.dtype == layer.dgamma.dtype == layer.running_mean.dtype == hdtype
        assert layer.forward(x, train_flg=False).dtype == hdtype


# ======================================================================================================
# elementwise losses: sigmoid + binary cross-entropy, mean squared error


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_sigmoid_bce_and_mse(rng, hdtype, n):
    x = rand(rng, (n, 1), hdtype, 4.0)
    t = rng.integers(0, 2, (n, 1)).astype(hdtype)
    loss, y = ops.sigmoid_cross_entropy(x, t)
    ref = ref_layers.SigmoidWithLoss()
    r_loss = ref.forward(*f64(x, t))
    assert y.dtype == hdtype
    # y: sigmoid in double, rounded through float32 and then to the type; the loss: n terms of a few double
    # operations each (exp, log1p), summed in double
    assert_within(y, ref.y, bound(ref.y, hdtype, 2 * U32 * ref.y), "y")
    xv, tv = f64(x, t)
    terms = np.abs(np.maximum(xv, 0)) + np.abs(xv * tv) + np.log1p(np.exp(-np.abs(xv)))
    # n - 1 double additions and a few operations per term, in the kernel and in the reference alike
    assert abs(loss - r_loss) <= (2 * n + 8) * 2.0**-53 * terms.mean(), (loss, r_loss)
    # backward on the kernel's own y: y - t, dout / n and the product, three float32 roundings
    dx = ops.sigmoid_cross_entropy_backward(y, t, 2.0)
    rdx = (f64(y) - tv) * (2.0 / n)
    assert dx.dtype == hdtype
    assert_within(dx, rdx, bound(rdx, hdtype, 3 * U32 * np.abs(rdx)), "bce dx")
    yy = rand(rng, (n, 3), hdtype)
    tt = rand(rng, (n, 3), hdtype)
    mse = ops.mean_squared_error(yy, tt)
    mref = ref_layers.MeanSquaredError()
    r_mse = mref.forward(*f64(yy, tt))
    # y - t is exact in double; the square, n - 1 additions and the division, in the kernel and the reference
    assert abs(mse - r_mse) <= (2 * (3 * n) + 2) * 2.0**-53 * r_mse, (mse, r_mse)
    mdx = ops.mean_squared_error_backward(yy, tt, 0.5)
    r_mdx = mref.backward(0.5)
    assert mdx.dtype == hdtype
    assert_within(mdx, r_mdx, bound(r_mdx, hdtype, 3 * U32 * np.abs(r_mdx)), "mse dx")


def test_loss_layers_keep_dtype(rng, hdtype):
    x, t = rand(rng, (4, 2), hdtype), rng.integers(0, 2, (4, 2))
    for layer in (layers.SigmoidWithLoss(), layers.MeanSquaredError()):
        assert np.isfinite(layer.forward(x, t.astype(hdtype)))
        assert layer.backward().dtype == hdtype


def test_add_concat_keep_dtype(rng, hdtype):
    a, b = rand(rng, (2, 3, 4, 4), hdtype), rand(rng, (2, 5, 4, 4), hdtype)
    s = ops.add_forward(a, a)
    assert s.dtype == hdtype
    np.testing.assert_array_equal(f64(s), f64(cast(f64(a) * 2, hdtype)))  # doubling is exact
    c = ops.concat_forward([a, b])
    assert c.dtype == hdtype
    da, db = ops.concat_backward(c, [3, 5])
    np.testing.assert_array_equal(da.view(np.uint16), a.view(np.uint16))
    np.testing.assert_array_equal(db.view(np.uint16), b.view(np.uint16))


# ======================================================================================================
# every layer of fastconv.layers and every image model of fastconv.models in the 16-bit types


def half_layer_cases(rng, hd):
    """name -> (layer, forward arguments): one small case per public layer of fastconv.layers."""
    img = rand(rng, (2, 3, 6, 6), hd)
    return {
        "Relu": (layers.Relu(), (img,)),
        "Sigmoid": (layers.Sigmoid(), (img,)),
        "Affine": (layers.Affine(rand(rng, (108, 4), hd, 0.1), rand(rng, 4, hd)), (img,)),
        "SoftmaxWithLoss": (layers.SoftmaxWithLoss(), (rand(rng, (2, 5), hd), np.array([1, 4]))),
        "Dropout": (layers.Dropout(0.3, seed=1), (img,)),
        "BatchNormalization": (layers.BatchNormalization(rand(rng, 108, hd), rand(rng, 108, hd)), (img,)),
        "Convolution": (layers.Convolution(rand(rng, (4, 3, 3, 3), hd, 0.3), rand(rng, 4, hd), 1, 1), (img,)),
        "Deconvolution": (layers.Deconvolution(rand(rng, (3, 2, 3, 3), hd, 0.3), rand(rng, 2, hd), 2, 1),
                          (img,)),
        "Pooling": (layers.Pooling(2, 2, 2), (img,)),
        "AvgPooling": (layers.AvgPooling(3, 3, 1, 1), (img,)),
        "ZeroPadding": (layers.ZeroPadding((1, 2)), (img,)),
        "Cropping": (layers.Cropping(1), (img,)),
        "LeakyRelu": (layers.LeakyRelu(0.1), (img,)),
        "Tanh": (layers.Tanh(), (img,)),
        "SpatialBatchNormalization": (layers.SpatialBatchNormalization(rand(rng, 3, hd), rand(rng, 3, hd)),
                                      (img,)),
        "GlobalAvgPooling": (layers.GlobalAvgPooling(), (img,)),
        "GlobalMaxPooling": (layers.GlobalMaxPooling(), (img,)),
        "Upsampling": (layers.Upsampling(2, "bilinear"), (img,)),
        "Add": (layers.Add(), (img, rand(rng, img.shape, hd))),
        "Concat": (layers.Concat(), (img, rand(rng, (2, 1, 6, 6), hd))),
        "SigmoidWithLoss": (layers.SigmoidWithLoss(), (rand(rng, (2, 1), hd), np.array([[0.0], [1.0]]))),
        "MeanSquaredError": (layers.MeanSquaredError(), (rand(rng, (2, 3), hd), rand(rng, (2, 3), hd))),
    }


def test_every_layer_in_half(rng, hdtype):
    """Every public layer runs a forward and a backward in the type and keeps it (a layer added to
    fastconv.layers without a case here fails)."""
    cases = half_layer_cases(rng, hdtype)
    assert set(cases) == set(layers.__all__)
    for name, (layer, args) in cases.items():
        out = layer.forward(*args)
        if name.endswith("Loss") or name == "MeanSquaredError":
            assert np.isfinite(out), name
            grads = (layer.backward(),)
        else:
            assert out.dtype == hdtype, name
            grads = layer.backward(np.ones_like(out))
            grads = grads if isinstance(grads, tuple) else (grads,)
        assert all(g.dtype == hdtype and g.shape == a.shape for g, a in zip(grads, args)), name
        for attr in ("dW", "db", "dgamma", "dbeta"):
            if getattr(layer, attr, None) is not None:
                assert getattr(layer, attr).dtype == hdtype, f"{name}.{attr}"


def half_models():
    """Every image model of fastconv.models, built small where it has a size (name -> constructor)."""
    from fastconv import models

    cases = {name: functools.partial(lambda cls, hd: cls(dtype=hd), cls) for name, cls in models.MODELS.items()}
    cases["multilayernet"] = lambda hd: models.MultiLayerNet(784, [20, 20], 10, dtype=hd)
    cases["multilayernetextend"] = lambda hd: models.MultiLayerNetExtend(
        784, [20, 20], 10, use_dropout=True, use_batchnorm=True, dtype=hd)
    return cases


@pytest.mark.parametrize("name", list(half_models()))
def test_models_in_half(rng, hdtype, name):
    """Each model builds in the type and its gradient() (a forward and a backward) keeps the type."""
    np.random.seed(7)
    net = half_models()[name](hdtype)
    assert all(p.dtype == hdtype for p in net.params.values())
    x = rng.random((2, 1, 28, 28)).astype(hdtype)
    if name.startswith("multilayer"):
        x = x.reshape(2, 784)
    grads = net.gradient(x, np.array([3, 7]))
    assert set(grads) == set(net.params)
    for key, g in grads.items():
        assert g.dtype == hdtype and np.all(np.isfinite(f64(g))), key


# ======================================================================================================
# optimizers: the fused update kernels on 16-bit parameters (state in the parameter's dtype, as PyTorch)
# The 16-bit kernels widen p, g and the state exactly, run the float32 step (whose bits equal the float32
# reference step's: tests/test_optimizer.py) and round each stored value once, so their result is the float32
# reference step on the widened arrays, rounded to the type: bit for bit.

# method -> its hyperparameters, in the order of its reference step's arguments (the step is <method>_step)
OPTIM_HYPER = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "nesterov": {"lr": 0.1, "momentum": 0.9},
    "adagrad": {"lr": 0.1, "eps": 1e-7},
    "rmsprop": {"lr": 0.1, "decay_rate": 0.9, "eps": 1e-7},
    "adam": {"lr_t": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
    "keras_nesterov": {"lr": 0.1, "momentum": 0.9},
    "keras_adagrad": {"lr": 0.1, "eps": 1e-7},
    "keras_rmsprop": {"lr": 0.1, "rho": 0.9, "eps": 1e-7},
}


@pytest.fixture
def no_numpy_fallback(monkeypatch):
    """Fails a test whose update would leave the kernels for the NumPy formulas (fastconv._optim._numpy_step)."""
    from fastconv import _optim

    def refuse(*args, **kwargs):
        raise AssertionError("a 16-bit parameter took the NumPy path")

    monkeypatch.setattr(_optim, "_numpy_step", refuse)


@pytest.mark.parametrize("method", list(OPTIM_HYPER))
@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["wd0", "wd"])
def test_optimizer_kernels_in_half(rng, isa, hdtype, method, weight_decay, no_numpy_fallback):
    from fastconv import _optim
    from fastconv.reference import optimizer as ref_opt

    hyper = OPTIM_HYPER[method]
    names = _optim._OPTIM_ARGS[method][0]  # the state arrays, in the step's argument order
    step_name = f"{method}_step"
    # sizes around the kernels' 256-element tiles and the parallel threshold (2**15)
    shapes = {"W": (3, 5), "b": (257,), "big": (40000,)}
    params = {k: rand(rng, s, hdtype) for k, s in shapes.items()}
    # non-negative accumulators where the method squares into them
    state = {n: {k: np.abs(rand(rng, s, hdtype, 0.5)) for k, s in shapes.items()} for n in names}
    held = dict(params)
    for it in range(3):
        grads = {k: rand(rng, s, hdtype) for k, s in shapes.items()}
        want = {k: f64(p).astype(np.float32) for k, p in params.items()}
        want_state = {n: {k: f64(a).astype(np.float32) for k, a in d.items()} for n, d in state.items()}
        for k in params:
            getattr(ref_opt, step_name)(want[k], f64(grads[k]).astype(np.float32),
                                        *(want_state[n][k] for n in names), *hyper.values(),
                                        weight_decay=weight_decay)
        _optim.optimizer_update(method, params, grads, state, **hyper, weight_decay=weight_decay)
        for k, p in params.items():
            assert p is held[k] and p.dtype == hdtype
            same_bits_or_nan(p, cast(want[k], hdtype), f"{isa} {method} step {it} {k}")
            for n in names:
                assert state[n][k].dtype == hdtype
                same_bits_or_nan(state[n][k], cast(want_state[n][k], hdtype), f"{isa} {method} {n}[{k}]")


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_book_optimizers_use_kernels_in_half(rng, hdtype, name, no_numpy_fallback):
    """The book's optimizer classes update 16-bit parameters in place with the kernels, keeping the state in the
    parameter's dtype."""
    from fastconv import optimizer

    params = {"W": rand(rng, (4, 3), hdtype), "b": rand(rng, 3, hdtype)}
    held = dict(params)
    opt = getattr(optimizer, name)()
    before = {k: p.copy() for k, p in params.items()}
    for _ in range(2):
        opt.update(params, {k: rand(rng, p.shape, hdtype) for k, p in params.items()})
    for k, p in params.items():
        assert p is held[k] and p.dtype == hdtype and not np.array_equal(f64(p), f64(before[k]))


# ======================================================================================================
# every public op of fastconv.ops takes float16 and bfloat16 (an op added without 16-bit kernels fails here)

# Ops that validate or convert rather than compute: no kernels of their own.
NOT_KERNELS = {"as_array", "check_labels", "check_seed", "check_param_dicts", "optimizer_hyperparameters"}


def op_calls(rng, hd):
    """name -> a thunk calling that op of fastconv.ops on small valid arguments of the type ``hd`` (its float
    arguments; labels and indices stay integers). Backward ops of the sequence cells take forward results
    computed in float32 and rounded."""
    def r(*shape, scale=1.0):
        return rand(rng, shape, hd, scale)

    def h(*arrays):
        return tuple(a.astype(hd) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays)

    x4, W4, b4 = r(2, 3, 6, 6), r(4, 3, 3, 3, scale=0.3), r(4)
    out4, arg4 = ops.maxpool_forward(x4.astype(np.float32), 2, 2, 2)
    gout, garg = ops.global_maxpool_forward(x4.astype(np.float32))
    N, T, D, H = 2, 3, 4, 5
    xs, h0, c0 = r(N, T, D), r(N, H), r(N, H)
    f32 = {k: v.astype(np.float32) for k, v in {"xs": xs, "h0": h0, "c0": c0}.items()}
    Wx = {g: r(D, g * H, scale=0.3) for g in (1, 3, 4)}
    Wh = {g: r(H, g * H, scale=0.3) for g in (1, 3, 4)}
    bb = {g: r(g * H) for g in (1, 3, 4)}
    w32 = {g: (Wx[g].astype(np.float32), Wh[g].astype(np.float32), bb[g].astype(np.float32)) for g in (1, 3, 4)}
    rnn_hs = ops.rnn_forward(f32["xs"], *w32[1], f32["h0"])
    lstm = ops.lstm_forward(f32["xs"], *w32[4], f32["h0"], f32["c0"])
    gru = ops.gru_forward(f32["xs"], *w32[3], f32["h0"])
    gra = ops.gru_reset_after_forward(f32["xs"], *w32[3], w32[3][2], f32["h0"])
    dhs = r(N, T, H)
    ts_loss = ops.time_softmax_ce(r(N, T, 7).astype(np.float32), rng.integers(0, 7, (N, T)))
    hs_enc, hs_dec, hq = r(N, 4, H), r(N, T, H), r(N, H)
    att = ops.attention_forward(hs_enc.astype(np.float32), hs_dec.astype(np.float32))
    aw = ops.attention_weight_forward(hs_enc.astype(np.float32), hq.astype(np.float32))
    ln = ops.layernorm_forward(r(3, 6).astype(np.float32), np.ones(6, np.float32), np.zeros(6, np.float32))
    q, k, v = r(2, 3, 4), r(2, 5, 4), r(2, 5, 4)
    sd = ops.sdpa_forward(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), 0.5)
    ln_x = r(3, 6)
    idx = np.array([[0, 2], [2, 1]])

    def state(*names):
        return {n: {"w": np.zeros(5, hd)} for n in names}

    return {
        "gemm": lambda: ops.gemm(r(3, 4), r(4, 5)),
        "im2col": lambda: ops.im2col(x4, 3, 3),
        "col2im": lambda: ops.col2im(r(2 * 16, 27), x4.shape, 3, 3),
        "conv_forward": lambda: ops.conv_forward(x4, W4, b4),
        "conv_backward": lambda: ops.conv_backward(x4, W4, r(2, 4, 4, 4)),
        "deconv_forward": lambda: ops.deconv_forward(r(2, 4, 3, 3), W4, r(3)),
        "deconv_backward": lambda: ops.deconv_backward(r(2, 4, 3, 3), W4, r(2, 3, 5, 5)),
        "zeropad": lambda: ops.zeropad(x4, 1),
        "crop": lambda: ops.crop(x4, 1),
        "maxpool_forward": lambda: ops.maxpool_forward(x4, 2, 2, 2),
        "maxpool_backward": lambda: ops.maxpool_backward(*h(out4), arg4, x4.shape, 2, 2, 2),
        "avgpool_forward": lambda: ops.avgpool_forward(x4, 2, 2, 2),
        "avgpool_backward": lambda: ops.avgpool_backward(r(2, 3, 3, 3), x4.shape, 2, 2, 2),
        "relu_forward": lambda: ops.relu_forward(x4),
        "relu_backward": lambda: ops.relu_backward(x4, x4),
        "sigmoid_forward": lambda: ops.sigmoid_forward(x4),
        "sigmoid_backward": lambda: ops.sigmoid_backward(x4, x4),
        "affine_forward": lambda: ops.affine_forward(r(2, 4), r(4, 3), r(3)),
        "affine_backward": lambda: ops.affine_backward(r(2, 4), r(4, 3), r(2, 3)),
        "softmax": lambda: ops.softmax(r(2, 5)),
        "softmax_cross_entropy": lambda: ops.softmax_cross_entropy(r(2, 5), np.array([1, 4])),
        "softmax_cross_entropy_backward": lambda: ops.softmax_cross_entropy_backward(r(2, 5), np.array([1, 4])),
        "dropout_forward": lambda: ops.dropout_forward(x4, 0.5, 3),
        "dropout_infer": lambda: ops.dropout_infer(x4, 0.5),
        "dropout_backward": lambda: ops.dropout_backward(x4, ops.dropout_forward(x4, 0.5, 3)[1]),
        "batchnorm_forward_train": lambda: ops.batchnorm_forward_train(r(4, 3), r(3), r(3), r(3), np.abs(r(3))),
        "batchnorm_forward_infer": lambda: ops.batchnorm_forward_infer(r(4, 3), r(3), r(3), r(3), np.abs(r(3))),
        "batchnorm_backward": lambda: ops.batchnorm_backward(r(4, 3), r(4, 3), r(4, 3), np.abs(r(3)) + 1, r(3)),
        "leaky_relu_forward": lambda: ops.leaky_relu_forward(x4),
        "leaky_relu_backward": lambda: ops.leaky_relu_backward(x4, x4),
        "tanh_forward": lambda: ops.tanh_forward(x4),
        "tanh_backward": lambda: ops.tanh_backward(x4, x4),
        "spatial_batchnorm_forward_train": lambda: ops.spatial_batchnorm_forward_train(x4, r(3), r(3), r(3),
                                                                                        np.abs(r(3))),
        "spatial_batchnorm_forward_infer": lambda: ops.spatial_batchnorm_forward_infer(x4, r(3), r(3), r(3),
                                                                                        np.abs(r(3))),
        "spatial_batchnorm_backward": lambda: ops.spatial_batchnorm_backward(x4, x4, np.zeros(3), np.ones(3), r(3)),
        "global_avgpool_forward": lambda: ops.global_avgpool_forward(x4),
        "global_avgpool_backward": lambda: ops.global_avgpool_backward(r(2, 3), x4.shape),
        "global_maxpool_forward": lambda: ops.global_maxpool_forward(x4),
        "global_maxpool_backward": lambda: ops.global_maxpool_backward(*h(gout), garg, x4.shape),
        "upsample_forward": lambda: ops.upsample_forward(x4, 2, "bilinear"),
        "upsample_backward": lambda: ops.upsample_backward(r(2, 3, 12, 12), x4.shape, 2),
        "add_forward": lambda: ops.add_forward(x4, x4),
        "concat_forward": lambda: ops.concat_forward([x4, x4]),
        "concat_backward": lambda: ops.concat_backward(x4, [1, 2]),
        "sigmoid_cross_entropy": lambda: ops.sigmoid_cross_entropy(r(4, 1), np.array([[0], [1], [1], [0]])),
        "sigmoid_cross_entropy_backward": lambda: ops.sigmoid_cross_entropy_backward(r(4, 1), np.ones((4, 1))),
        "mean_squared_error": lambda: ops.mean_squared_error(r(4, 2), r(4, 2)),
        "mean_squared_error_backward": lambda: ops.mean_squared_error_backward(r(4, 2), r(4, 2)),
        "optimizer_update": lambda: ops.optimizer_update("adam", {"w": r(5)}, {"w": r(5)}, state("m", "v"),
                                                         lr_t=0.01, beta1=0.9, beta2=0.999, eps=1e-7,
                                                         weight_decay=0.0),
        "sgd_update": lambda: ops.sgd_update(r(5), r(5), 0.1),
        "momentum_update": lambda: ops.momentum_update(r(5), r(5), r(5), 0.1, 0.9),
        "nesterov_update": lambda: ops.nesterov_update(r(5), r(5), r(5), 0.1, 0.9),
        "adagrad_update": lambda: ops.adagrad_update(r(5), r(5), np.abs(r(5)), 0.1),
        "rmsprop_update": lambda: ops.rmsprop_update(r(5), r(5), np.abs(r(5)), 0.1, 0.9),
        "adam_update": lambda: ops.adam_update(r(5), r(5), r(5), np.abs(r(5)), 0.01, 0.9, 0.999),
        "adadelta_update": lambda: ops.adadelta_update(r(5), r(5), np.abs(r(5)), np.abs(r(5)), 1.0, 0.9, 1e-6),
        "embedding_forward": lambda: ops.embedding_forward(r(3, 4), idx),
        "embedding_backward": lambda: ops.embedding_backward(r(2, 2, 4), idx, (3, 4)),
        "rnn_forward": lambda: ops.rnn_forward(xs, Wx[1], Wh[1], bb[1], h0),
        "rnn_backward": lambda: ops.rnn_backward(xs, Wx[1], Wh[1], h0, *h(rnn_hs), dhs),
        "lstm_forward": lambda: ops.lstm_forward(xs, Wx[4], Wh[4], bb[4], h0, c0),
        "lstm_backward": lambda: ops.lstm_backward(xs, Wx[4], Wh[4], h0, c0, *h(*lstm), dhs),
        "gru_forward": lambda: ops.gru_forward(xs, Wx[3], Wh[3], bb[3], h0),
        "gru_backward": lambda: ops.gru_backward(xs, Wx[3], Wh[3], h0, *h(*gru), dhs),
        "gru_reset_after_forward": lambda: ops.gru_reset_after_forward(xs, Wx[3], Wh[3], bb[3], bb[3], h0),
        "gru_reset_after_backward": lambda: ops.gru_reset_after_backward(xs, Wx[3], Wh[3], h0, *h(*gra), dhs),
        "time_softmax_ce": lambda: ops.time_softmax_ce(r(N, T, 7), rng.integers(0, 7, (N, T))),
        "time_softmax_ce_backward": lambda: ops.time_softmax_ce_backward(*h(*ts_loss[1:])),
        "weight_sum_forward": lambda: ops.weight_sum_forward(hs_enc, r(N, 4)),
        "weight_sum_backward": lambda: ops.weight_sum_backward(hs_enc, r(N, 4), r(N, H)),
        "attention_weight_forward": lambda: ops.attention_weight_forward(hs_enc, hq),
        "attention_weight_backward": lambda: ops.attention_weight_backward(hs_enc, hq, *h(aw), r(N, 4)),
        "attention_forward": lambda: ops.attention_forward(hs_enc, hs_dec),
        "attention_backward": lambda: ops.attention_backward(hs_enc, hs_dec, *h(att[1]), r(N, T, H)),
        "layernorm_forward": lambda: ops.layernorm_forward(ln_x, r(6), r(6)),
        "layernorm_backward": lambda: ops.layernorm_backward(ln_x, r(6), *h(*ln[1:]), r(3, 6)),
        "sdpa_forward": lambda: ops.sdpa_forward(q, k, v, 0.5),
        "sdpa_backward": lambda: ops.sdpa_backward(q, k, v, *h(sd[1]), r(2, 3, 4), 0.5),
    }


def test_every_op_takes_half(rng, hdtype):
    """Every public op of fastconv.ops runs on float16 / bfloat16 arguments and returns arrays of the type."""
    public = set(ops.__all__) - NOT_KERNELS
    calls = op_calls(rng, hdtype)
    assert set(calls) == public, f"ops without a case here: {sorted(public - set(calls))}"
    for name, call in calls.items():
        result = call()
        results = result if isinstance(result, tuple) else (result,)
        # integer indices, boolean masks and the spatial batch norm's float64 statistics are not of the type
        arrays = [a for a in results if isinstance(a, np.ndarray) and a.dtype.kind not in "iub"
                  and not (name == "spatial_batchnorm_forward_train" and a.dtype == np.float64)]
        assert all(a.dtype == hdtype for a in arrays), (name, [a.dtype for a in arrays])
        assert arrays or result is None or isinstance(result, float), name


# ======================================================================================================
# sequence ops: embedding, layer norm, softmax with loss over time


def test_embedding(rng, hdtype):
    W = np.concatenate([rand(rng, (6, 5), hdtype).ravel()[:-3], special_values(hdtype)[:3]]).reshape(6, 5)
    idx = np.array([[0, 5, 5], [2, 5, 0]])
    out = ops.embedding_forward(W, idx)
    assert out.dtype == hdtype
    np.testing.assert_array_equal(out.view(np.uint16), W.view(np.uint16)[idx])  # a copy: the bits
    # 40 columns: more than one of the scatter-add's 16-column blocks
    dout = rand(rng, (2, 3, 40), hdtype)
    dW = ops.embedding_backward(dout, idx, (6, 40))
    want, mag = np.zeros((6, 40)), np.zeros((6, 40))
    np.add.at(want, idx, f64(dout))
    np.add.at(mag, idx, np.abs(f64(dout)))
    k = np.bincount(idx.ravel(), minlength=6)[:, None]  # terms summed into each row, in float32
    assert dW.dtype == hdtype
    assert_within(dW, want, bound(want, hdtype, k * U32 * mag), "dW")


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 4, 130)])
def test_layernorm(rng, hdtype, shape):
    from fastconv.reference import layernorm as ref_ln

    D = shape[-1]
    x = (f64(rand(rng, shape, hdtype, 2.0)) + 3.0).astype(hdtype)
    gamma, beta = rand(rng, D, hdtype), rand(rng, D, hdtype)
    out, mean, rstd = ops.layernorm_forward(x, gamma, beta)
    assert out.dtype == mean.dtype == rstd.dtype == hdtype
    want, (_, std, _) = ref_ln.layernorm_forward(*f64(x, gamma, beta))
    mu = f64(x).mean(axis=-1, keepdims=True)
    # the row statistics are in double, rounded once to float32 (mean, rstd); then x - mean, * rstd, * gamma and
    # + beta: four float32 roundings of terms within |gamma| (|x| + |mean|) rstd and |beta|
    g, b = f64(gamma, beta)
    e_out = U32 * (5 * np.abs(g) * (np.abs(f64(x)) + np.abs(mu)) / std + np.abs(b))
    assert_within(out, want, bound(want, hdtype, e_out), "out")
    assert_within(mean, mu.ravel(), bound(mu.ravel(), hdtype, U32 * np.abs(mu.ravel())), "mean")
    assert_within(rstd, 1 / std.ravel(), bound(1 / std.ravel(), hdtype, U32 / std.ravel()), "rstd")
    # backward on the kernel's own (rounded) mean and rstd, as the layer runs it
    dout = rand(rng, shape, hdtype)
    dx, dgamma, dbeta = ops.layernorm_backward(x, gamma, mean, rstd, dout)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == hdtype
    rs = f64(rstd).reshape(mu.shape)
    xh = (f64(x) - f64(mean).reshape(mu.shape)) * rs
    rdx, rdg, rdb = ref_ln.layernorm_backward(f64(dout), (xh, 1 / rs, g))
    d = np.abs(f64(dout))
    xm = (np.abs(f64(x)) + np.abs(f64(mean)).reshape(mu.shape)) * rs  # the size of xhat's terms
    ag = d * np.abs(g)
    # dx = rstd * (g - mean(g) - xhat * mean(g * xhat)): xhat two float32 roundings, the row means in double
    # rounded once, the products, the two subtractions and the product by rstd: 8 roundings at most
    mag_dx = rs * (ag + ag.mean(axis=-1, keepdims=True) + xm * (ag * xm).mean(axis=-1, keepdims=True))
    assert_within(dx, rdx, bound(rdx, hdtype, 8 * U32 * mag_dx), "dx")
    rows = int(np.prod(shape[:-1]))
    axes = tuple(range(len(shape) - 1))
    # column sums over the rows in float32, each term dout * xhat (three roundings)
    assert_within(dgamma, rdg, bound(rdg, hdtype, (rows + 3) * U32 * (d * xm).sum(axis=axes)), "dgamma")
    assert_within(dbeta, rdb, bound(rdb, hdtype, rows * U32 * d.sum(axis=axes)), "dbeta")


@pytest.mark.parametrize("N,T,V", [(1, 1, 3), (2, 5, 10), (3, 4, 300)])
def test_time_softmax_ce(rng, hdtype, N, T, V):
    xs = rand(rng, (N, T, V), hdtype, 3.0)
    ts = rng.integers(0, V, (N, T))
    ts[0, 0] = -1  # an ignored step
    loss, ys, labels, kept = ops.time_softmax_ce(xs, ts)
    assert ys.dtype == hdtype and kept == N * T - 1
    r_ys = ref_functions.softmax(f64(xs).reshape(-1, V)).reshape(xs.shape)
    c = 4 * U32 * V  # the float32 softmax: V terms in the sum, exp and the division a few ulps each
    assert_within(ys, r_ys, bound(r_ys, hdtype, c * np.abs(r_ys)), "ys")
    keep = ts != -1
    if kept:
        picked = np.take_along_axis(r_ys, np.where(keep, ts, 0)[..., None], axis=-1)[..., 0]
        r_loss = -np.log(picked[keep]).mean()
        # each row's loss is log(sum) + max - x[label] in double from the float32 sum: relative c in the sum
        assert abs(loss - r_loss) <= c + 1e-12, (loss, r_loss)
    dx = ops.time_softmax_ce_backward(ys, labels, kept, 2.0)
    onehot = np.zeros(xs.shape)
    np.put_along_axis(onehot, np.where(keep, ts, 0)[..., None], 1.0, axis=-1)
    rdx = np.where(keep[..., None], (f64(ys) - onehot) * (2.0 / max(kept, 1)), 0.0)
    assert dx.dtype == hdtype
    assert_within(dx, rdx, bound(rdx, hdtype, 3 * U32 * np.abs(rdx)), "dx")


# ======================================================================================================
# recurrent cells and attention: what they keep in float32 and what they round
# The 16-bit kernels widen every input exactly and run the float32 kernel's own arithmetic, in its order, on
# float32 scratch (the recurrences' gates, c, h and the backward's carries never pass through 16 bits); each
# output is rounded once. So their results are the float32 kernels' results on the widened inputs, rounded
# once: bit for bit (the float32 kernels are tested against the reference in test_time_layers.py,
# test_gru_reset_after.py and test_sdpa.py). Sizes keep N*T <= 512 rows, the block in which the 16-bit
# backward widens xs for the weight-gradient GEMM (beyond it the K sum is split at other points than the
# float32 GEMM's: the same float32 accumulation, not the same bits; the bounds below still hold).

SEQ_CASES = [(1, 1, 1, 1), (3, 5, 7, 6), (8, 12, 33, 20)]  # (N, T, D, H)
# N*T = 560 rows: two of the 512-row blocks in which the 16-bit kernels widen xs for the whole-sequence GEMMs
SEQ_CASES_REF = [*SEQ_CASES, (40, 14, 9, 6)]
SEQ_REF_IDS = [f"N{n}T{t}D{d}H{h}" for n, t, d, h in SEQ_CASES_REF]
CELLS = {"rnn": 1, "lstm": 4, "gru": 3, "gru_reset_after": 3}


def seq_inputs(rng, hd, case, gates):
    N, T, D, H = case
    return {"xs": rand(rng, (N, T, D), hd), "Wx": rand(rng, (D, gates * H), hd, 1 / np.sqrt(D)),
            "Wh": rand(rng, (H, gates * H), hd, 1 / np.sqrt(H)), "b": rand(rng, gates * H, hd, 0.5),
            "bh": rand(rng, gates * H, hd, 0.5), "h0": rand(rng, (N, H), hd, 0.5),
            "c0": rand(rng, (N, H), hd), "dhs": rand(rng, (N, T, H), hd), "dc": rand(rng, (N, H), hd)}


def cell_forward(cell, a):
    """The forward op of ``cell`` on the inputs ``a`` (whatever their dtype): a tuple of its outputs."""
    if cell == "rnn":
        return (ops.rnn_forward(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"]),)
    if cell == "lstm":
        return ops.lstm_forward(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"], a["c0"])
    if cell == "gru":
        return ops.gru_forward(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"])
    return ops.gru_reset_after_forward(a["xs"], a["Wx"], a["Wh"], a["b"], a["bh"], a["h0"])


def cell_backward(cell, a, fwd):
    """The backward op of ``cell`` for the forward results ``fwd``: a tuple of its gradients."""
    if cell == "lstm":
        return ops.lstm_backward(a["xs"], a["Wx"], a["Wh"], a["h0"], a["c0"], *fwd, a["dhs"], dc_last=a["dc"])
    backward = {"rnn": ops.rnn_backward, "gru": ops.gru_backward,
                "gru_reset_after": ops.gru_reset_after_backward}[cell]
    return backward(a["xs"], a["Wx"], a["Wh"], a["h0"], *fwd, a["dhs"])


def same_bits_as_float32(got, want32, hdtype, msg):
    for i, (g, w) in enumerate(zip(got, want32)):
        assert g.dtype == hdtype and w.dtype == np.float32, msg
        same_bits_or_nan(g, cast(w, hdtype), f"{msg} output {i}")


@pytest.mark.parametrize("case", SEQ_CASES, ids=[f"N{n}T{t}D{d}H{h}" for n, t, d, h in SEQ_CASES])
@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_is_float32_rounded_once(rng, isa, hdtype, cell, case):
    """Forward and backward of each cell: the float32 kernel on the widened inputs, each output rounded once
    (the backward of the 16-bit forward results the caller holds, widened)."""
    a = seq_inputs(rng, hdtype, case, CELLS[cell])
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    fwd = cell_forward(cell, a)
    same_bits_as_float32(fwd, cell_forward(cell, a32), hdtype, f"{isa} {cell} {case} forward")
    grads = cell_backward(cell, a, fwd)
    want = cell_backward(cell, a32, tuple(f.astype(np.float32) for f in fwd))
    same_bits_as_float32(grads, want, hdtype, f"{isa} {cell} {case} backward")


@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_threads_same_bits(rng, hdtype, cell):
    """1 and 2 threads give the same bits, forward and backward, past one 512-row block of xs."""
    a = seq_inputs(rng, hdtype, (40, 14, 9, 6), CELLS[cell])
    prev = fastconv.get_num_threads()
    got = []
    try:
        for t in (1, 2):
            fastconv.set_num_threads(t)
            fwd = cell_forward(cell, a)
            got.append((*fwd, *cell_backward(cell, a, fwd)))
    finally:
        fastconv.set_num_threads(prev)
    for x, y in zip(*got, strict=True):
        np.testing.assert_array_equal(x.view(np.uint16), y.view(np.uint16), err_msg=cell)


ATT_CASES = [(1, 1, 1, 1), (3, 5, 4, 6), (4, 9, 7, 40)]  # (N, S, L, H)


def attention_calls(rng, hd, case):
    """name -> (op, its arguments): every attention op on inputs of ``hd``; the backward ops get the forward
    results (rounded, as a layer holds them)."""
    N, S, L, H = case
    enc, dec, h, w, dc = rand(rng, (N, S, H), hd), rand(rng, (N, L, H), hd), rand(rng, (N, H), hd), \
        rand(rng, (N, S), hd), rand(rng, (N, H), hd)
    a1 = ops.attention_weight_forward(enc, h)
    _, a2 = ops.attention_forward(enc, dec)
    q, k, v, dout = rand(rng, (N, L, H), hd), rand(rng, (N, S, H), hd), rand(rng, (N, S, 3), hd), \
        rand(rng, (N, L, 3), hd)
    mask = (rng.random((N, L, S)) > 0.25).astype(hd) * hd.type(2.0)  # dropout 0.5's factors (exact)
    scale = 1 / np.sqrt(H)
    _, p = ops.sdpa_forward(q, k, v, scale)
    _, pm = ops.sdpa_forward(q, k, v, scale, mask=mask)
    return {
        "weight_sum_forward": (ops.weight_sum_forward, (enc, w)),
        "weight_sum_backward": (ops.weight_sum_backward, (enc, w, dc)),
        "attention_weight_forward": (ops.attention_weight_forward, (enc, h)),
        "attention_weight_backward": (ops.attention_weight_backward, (enc, h, a1, w)),
        "attention_forward": (ops.attention_forward, (enc, dec)),
        "attention_backward": (ops.attention_backward, (enc, dec, a2, rand(rng, (N, L, H), hd))),
        "sdpa_forward": (lambda *x: ops.sdpa_forward(*x, scale), (q, k, v)),
        "sdpa_forward_mask": (lambda *x: ops.sdpa_forward(*x[:3], scale, mask=x[3]), (q, k, v, mask)),
        "sdpa_backward": (lambda *x: ops.sdpa_backward(*x, scale), (q, k, v, p, dout)),
        "sdpa_backward_mask": (lambda *x: ops.sdpa_backward(*x[:5], scale, mask=x[5]),
                               (q, k, v, pm, dout, mask)),
    }


@pytest.mark.parametrize("case", ATT_CASES, ids=[f"N{n}S{s}L{l}H{h}" for n, s, l, h in ATT_CASES])
def test_attention_is_float32_rounded_once(rng, isa, hdtype, case):
    for name, (op, args) in attention_calls(rng, hdtype, case).items():
        got = op(*args)
        want = op(*(x.astype(np.float32) for x in args))
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        same_bits_as_float32(got, want, hdtype, f"{isa} {name} {case}")


# ======================================================================================================
# recurrent cells against the float64 reference on the same rounded inputs
# Forward: a first-order running error bound through the T steps. E_t bounds |float32 value - exact value| of
# every quantity of step t, elementwise: each GEMM or sum of K terms adds K roundings of its terms' magnitudes
# (K u |a| |b|), each product, sum or 1 - x one rounding of its value, tanh / sigmoid 4 float32 ulps (as in
# test_sigmoid_tanh), and the error a step inherits is its input's error times the magnitude of the step's
# Jacobian (E_{t-1} @ |Wh| through the recurrent GEMM, the gate derivatives f (1 - f), 1 - g**2 ... on the
# way). The recurrence itself runs in float32 (nothing is rounded to 16 bits between steps), so E_t stays at
# float32 size and each stored value adds one 16-bit rounding (``bound``). Backward: the gradients are linear
# in dhs given the stored forward values, so their float32 error is at most k u times the same recurrence run
# on the absolute values of every term (the magnitudes), with k the longest chain of roundings of any term:
# per step the recurrent GEMM (G*H terms) plus the few elementwise operations of the cell (C_STEP), over T
# steps, plus the final whole-sequence GEMM or sum (N*T terms at most).

U = U32


def _act_err(y, e_in, kind):
    """Error of sigmoid / tanh y computed in float32 from an input within e_in: the derivative times e_in
    plus 4 float32 ulps of the result."""
    deriv = y * (1 - y) if kind == "sigmoid" else 1 - y * y
    return deriv * e_in + 4 * U * np.abs(y)


def rnn_forward_errors(xs, Wx, Wh, b, caches):
    D, H = Wx.shape[0], Wh.shape[0]
    e_h, out = np.zeros_like(caches[0][1]), []
    for x, hp, h in caches:
        mag = np.abs(x) @ np.abs(Wx) + np.abs(b) + np.abs(hp) @ np.abs(Wh)
        e_pre = (D + H + 1) * U * mag + e_h @ np.abs(Wh)
        e_h = _act_err(h, e_pre, "tanh")
        out.append(e_h)
    return (np.stack(out, axis=1),)


def lstm_forward_errors(xs, Wx, Wh, b, caches):
    D, H = Wx.shape[0], Wh.shape[0]
    e_h, e_c, eh_all, ec_all, eg_all = np.zeros_like(caches[0][1]), 0.0, [], [], []
    for x, hp, cp, f, g, i, o, c in caches:
        mag = np.abs(x) @ np.abs(Wx) + np.abs(b) + np.abs(hp) @ np.abs(Wh)
        e_a = (D + H + 1) * U * mag + e_h @ np.abs(Wh)
        e_f, e_g = _act_err(f, e_a[:, :H], "sigmoid"), _act_err(g, e_a[:, H:2 * H], "tanh")
        e_i, e_o = _act_err(i, e_a[:, 2 * H:3 * H], "sigmoid"), _act_err(o, e_a[:, 3 * H:], "sigmoid")
        # c = f c_prev + g i: two products and a sum; h = o tanh(c): tanh and a product
        e_c = f * e_c + np.abs(cp) * e_f + i * e_g + np.abs(g) * e_i \
            + 3 * U * (f * np.abs(cp) + np.abs(g) * i)
        tc = np.tanh(c)
        e_h = o * _act_err(tc, e_c, "tanh") + np.abs(tc) * e_o + U * np.abs(o * tc)
        eh_all.append(e_h)
        ec_all.append(e_c)
        eg_all.append(np.concatenate([e_f, e_g, e_i, e_o], axis=1))
    return tuple(np.stack(e, axis=1) for e in (eh_all, ec_all, eg_all))


def gru_forward_errors(xs, Wx, Wh, b, caches):
    D, H = Wx.shape[0], Wh.shape[0]
    aWx, aWh, ab = np.abs(Wx), np.abs(Wh), np.abs(b)
    e_h, eh_all, eg_all, erh_all = np.zeros_like(caches[0][1]), [], [], []
    for x, hp, z, r, hh in caches:
        ax, ahp = np.abs(x), np.abs(hp)
        mag_zr = ax @ aWx[:, :2 * H] + ab[:2 * H] + ahp @ aWh[:, :2 * H]
        e_zr = (D + H + 1) * U * mag_zr + e_h @ aWh[:, :2 * H]
        e_z, e_r = _act_err(z, e_zr[:, :H], "sigmoid"), _act_err(r, e_zr[:, H:], "sigmoid")
        e_rh = ahp * e_r + r * e_h + U * r * ahp  # r * h_prev, one product
        mag_h = ax @ aWx[:, 2 * H:] + ab[2 * H:] + (r * ahp) @ aWh[:, 2 * H:]
        e_hh = _act_err(hh, (D + H + 1) * U * mag_h + e_rh @ aWh[:, 2 * H:], "tanh")
        # h = (1 - z) h_prev + z hh: 1 - z, two products and a sum
        e_h = (1 - z) * e_h + (ahp + np.abs(hh)) * e_z + z * e_hh + 4 * U * ((1 - z) * ahp + z * np.abs(hh))
        eh_all.append(e_h)
        eg_all.append(np.concatenate([e_z, e_r, e_hh], axis=1))
        erh_all.append(e_rh)
    return tuple(np.stack(e, axis=1) for e in (eh_all, eg_all, erh_all))


def gru_reset_after_forward_errors(xs, Wx, Wh, b, bh, caches):
    D, H = Wx.shape[0], Wh.shape[0]
    aWx, aWh, ab, abh = np.abs(Wx), np.abs(Wh), np.abs(b), np.abs(bh)
    e_h, eh_all, eg_all, erec_all = np.zeros_like(caches[0][1]), [], [], []
    for x, hp, z, r, hh, uh in caches:
        ax, ahp = np.abs(x), np.abs(hp)
        # z, r: (x Wx + bx) (D + 1 roundings) + (h_prev Wh + bh) (H + 1) and their sum
        mag_zr = ax @ aWx[:, :2 * H] + ab[:2 * H] + ahp @ aWh[:, :2 * H] + abh[:2 * H]
        e_zr = (D + H + 3) * U * mag_zr + e_h @ aWh[:, :2 * H]
        e_z, e_r = _act_err(z, e_zr[:, :H], "sigmoid"), _act_err(r, e_zr[:, H:], "sigmoid")
        e_rec = (H + 1) * U * (ahp @ aWh[:, 2 * H:] + abh[2 * H:]) + e_h @ aWh[:, 2 * H:]
        # x Wxh + bxh (D + 1 roundings), + r * rec (a product and a sum)
        e_ah = (D + 3) * U * (ax @ aWx[:, 2 * H:] + ab[2 * H:]) + np.abs(uh) * e_r + r * e_rec \
            + 2 * U * r * np.abs(uh)
        e_hh = _act_err(hh, e_ah, "tanh")
        e_h = z * e_h + (ahp + np.abs(hh)) * e_z + (1 - z) * e_hh + 4 * U * (z * ahp + (1 - z) * np.abs(hh))
        eh_all.append(e_h)
        eg_all.append(np.concatenate([e_z, e_r, e_hh], axis=1))
        erec_all.append(e_rec)
    return tuple(np.stack(e, axis=1) for e in (eh_all, eg_all, erec_all))


def _steps(a, T):
    return [a[:, t] for t in range(T)]


def ref_cell_forward(cell, a):
    """The reference forward on the (rounded) inputs in float64: (outputs in the kernel's order, the per-step
    caches, the error bounds of the float32 computation for each output)."""
    xs, Wx, Wh, b, bh, h0, c0 = f64(a["xs"], a["Wx"], a["Wh"], a["b"], a["bh"], a["h0"], a["c0"])
    H = Wh.shape[0]
    if cell == "rnn":
        hs, caches = ref_tl.rnn_forward(xs, Wx, Wh, b, h0)
        return (hs,), caches, rnn_forward_errors(xs, Wx, Wh, b, caches)
    if cell == "lstm":
        hs, _, caches = ref_tl.lstm_forward(xs, Wx, Wh, b, h0, c0)
        cs = np.stack([c[7] for c in caches], axis=1)
        gates = np.stack([np.concatenate(c[3:7], axis=1) for c in caches], axis=1)
        return (hs, cs, gates), caches, lstm_forward_errors(xs, Wx, Wh, b, caches)
    if cell == "gru":
        hs, caches = ref_tl.gru_forward(xs, Wx, Wh, b, h0)
        gates = np.stack([np.concatenate(c[2:5], axis=1) for c in caches], axis=1)
        rh = np.stack([c[3] * c[1] for c in caches], axis=1)
        return (hs, gates, rh), caches, gru_forward_errors(xs, Wx, Wh, b, caches)
    hs, caches = ref_tl.gru_reset_after_forward(xs, Wx, Wh, b, bh, h0)
    gates = np.stack([np.concatenate(c[2:5], axis=1) for c in caches], axis=1)
    rec = np.stack([c[5] for c in caches], axis=1)
    assert rec.shape[-1] == H
    return (hs, gates, rec), caches, gru_reset_after_forward_errors(xs, Wx, Wh, b, bh, caches)


@pytest.mark.parametrize("case", SEQ_CASES_REF, ids=SEQ_REF_IDS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_forward_vs_reference(rng, isa, hdtype, cell, case):
    a = seq_inputs(rng, hdtype, case, CELLS[cell])
    got = cell_forward(cell, a)
    want, _, errs = ref_cell_forward(cell, a)
    names = {"rnn": ["hs"], "lstm": ["hs", "cs", "gates"], "gru": ["hs", "gates", "rh"],
             "gru_reset_after": ["hs", "gates", "rec"]}[cell]
    for name, g, w, e in zip(names, got, want, errs, strict=True):
        assert g.dtype == hdtype
        assert_within(g, w, bound(w, hdtype, e), f"{isa} {cell} {case} {name}")


def gru_backward_magnitudes(dhs, caches, Wx, Wh, rh_slack):
    """The GRU backward recurrence on the absolute values of every term (hh - h_prev as |hh| + |h_prev|): an
    upper bound for the magnitude of every term of the reference's sums, in the reference's output order.
    ``rh_slack`` (N, T, H) bounds |rh - r * h_prev| for the rh the kernel is given (the forward stored
    r * h_prev rounded from float32 values, r and h_prev separately); the last result is the error that adds
    to dWh[:, 2H:].
    """
    H = Wh.shape[0]
    aWx, aWh = np.abs(Wx), np.abs(Wh)
    dh_next, dxs, dWx, dWh, db, extra = 0.0, [], 0.0, 0.0, 0.0, 0.0
    for t in reversed(range(dhs.shape[1])):
        x, hp, z, r, hh = caches[t]
        ahp, ahh = np.abs(hp), np.abs(hh)
        dh = np.abs(dhs[:, t]) + dh_next
        dah = dh * z * (1 - hh * hh)
        drh = dah @ aWh[:, 2 * H:].T
        da = np.concatenate([dh * (ahh + ahp) * z * (1 - z), drh * ahp * r * (1 - r), dah], axis=1)
        dh_next = dh * (1 - z) + drh * r + da[:, :2 * H] @ aWh[:, :2 * H].T
        dxs.append(da @ aWx.T)
        dWx = dWx + np.abs(x).T @ da
        dWh = dWh + np.concatenate([ahp.T @ da[:, :2 * H], (r * ahp).T @ dah], axis=1)
        db = db + da.sum(axis=0)
        extra = extra + rh_slack[:, t].T @ dah
    return np.stack(dxs[::-1], axis=1), dh_next, dWx, dWh, db, extra


def gru_reset_after_backward_magnitudes(dhs, caches, Wx, Wh):
    """The reset-after GRU backward recurrence on the absolute values of every term, in the reference's
    output order."""
    aWx, aWh = np.abs(Wx), np.abs(Wh)
    dh_next, dxs, dWx, dWh, dbx, dbh = 0.0, [], 0.0, 0.0, 0.0, 0.0
    for t in reversed(range(dhs.shape[1])):
        x, hp, z, r, hh, uh = caches[t]
        ahp = np.abs(hp)
        dh = np.abs(dhs[:, t]) + dh_next
        dah = dh * (1 - z) * (1 - hh * hh)
        daz = dh * (ahp + np.abs(hh)) * z * (1 - z)
        dar = dah * np.abs(uh) * r * (1 - r)
        da, du = np.concatenate([daz, dar, dah], axis=1), np.concatenate([daz, dar, dah * r], axis=1)
        dh_next = dh * z + du @ aWh.T
        dxs.append(da @ aWx.T)
        dWx, dWh = dWx + np.abs(x).T @ da, dWh + ahp.T @ du
        dbx, dbh = dbx + da.sum(axis=0), dbh + du.sum(axis=0)
    return np.stack(dxs[::-1], axis=1), dh_next, dWx, dWh, dbx, dbh


# per cell: the elementwise roundings on the longest path through one backward step (besides the G*H terms of
# the recurrent GEMM): RNN dh + carry, h*h, 1 - h*h, the product (4); LSTM tanh(c) (4 ulps), tc*tc, 1 - tc*tc,
# dh + carry, three products and a sum to ds, (1 - f) and three products to dA, ds*f (14, counted 16); GRU
# and the reset-after GRU the carry sum, hh*hh, 1 - hh*hh, 1 - z, two or three products, the r gate's
# 1 - r and three products, the two sums of the carry (11, counted 12)
C_STEP = {"rnn": 4, "lstm": 16, "gru": 12, "gru_reset_after": 12}


def ref_cell_backward(cell, a, fwd, hdtype):
    """The reference backward of the caches the kernel's own (rounded) forward results make, in the kernel's
    output order, with the error bound of each gradient."""
    xs, Wx, Wh, h0, c0, dhs = f64(a["xs"], a["Wx"], a["Wh"], a["h0"], a["c0"], a["dhs"])
    N, T, D = xs.shape
    H = Wh.shape[0]
    G = Wh.shape[1]
    fwd = [f64(f) for f in fwd]
    hp = _steps(np.concatenate([h0[:, None], fwd[0][:, :-1]], axis=1), T)
    x = _steps(xs, T)
    k = T * (G + C_STEP[cell]) + max(N * T, G, D) + 1
    aWx, aWh, adhs = np.abs(Wx), np.abs(Wh), np.abs(dhs)
    extra = None
    if cell == "rnn":
        caches = list(zip(x, hp, _steps(fwd[0], T), strict=True))
        want = ref_tl.rnn_backward(dhs, caches, Wx, Wh)
        mag = ref_tl.rnn_backward(adhs, [(np.abs(c[0]), np.abs(c[1]), c[2]) for c in caches], aWx, aWh)
        order = (0, 2, 3, 4, 1)  # kernel: dxs, dWx, dWh, db, dh0
    elif cell == "lstm":
        cp = _steps(np.concatenate([c0[:, None], fwd[1][:, :-1]], axis=1), T)
        gs = _steps(fwd[2], T)
        caches = [(x[t], hp[t], cp[t], *np.split(gs[t], 4, axis=1), fwd[1][:, t]) for t in range(T)]
        want = ref_tl.lstm_backward(dhs, caches, Wx, Wh)
        # with |g|, |c_prev|, |c| every term is a product of non-negatives (f, i, o, 1 - g**2,
        # 1 - tanh(c)**2 >= 0)
        mag = ref_tl.lstm_backward(adhs, [(np.abs(c[0]), np.abs(c[1]), np.abs(c[2]), c[3], np.abs(c[4]), c[5],
                                            c[6], np.abs(c[7])) for c in caches], aWx, aWh)
        order = (0, 3, 4, 5, 1, 2)  # kernel: dxs, dWx, dWh, db, dh0, dc0
    elif cell == "gru":
        gs = _steps(fwd[1], T)
        caches = [(x[t], hp[t], *np.split(gs[t], 3, axis=1)) for t in range(T)]
        want = ref_tl.gru_backward(dhs, caches, Wx, Wh)
        rhp = np.stack([c[3] * c[1] for c in caches], axis=1)
        # the stored rh is r * h_prev of the float32 values rounded once, r and h_prev were rounded separately
        slack = (3 * U_STORE[hdtype] + U) * np.abs(rhp) + 3 * TINY[hdtype]
        *mag, extra = gru_backward_magnitudes(dhs, caches, Wx, Wh, slack)
        order = (0, 2, 3, 4, 1)
    else:
        gs = _steps(fwd[1], T)
        caches = [(x[t], hp[t], *np.split(gs[t], 3, axis=1), fwd[2][:, t]) for t in range(T)]
        want = ref_tl.gru_reset_after_backward(dhs, caches, Wx, Wh)
        mag = gru_reset_after_backward_magnitudes(dhs, caches, Wx, Wh)
        order = (0, 2, 3, 4, 5, 1)  # kernel: dxs, dWx, dWh, dbx, dbh, dh0
    errs = [k * U * np.broadcast_to(m, w.shape) for m, w in zip(mag, want, strict=True)]
    if extra is not None:
        errs[3] = errs[3] + np.concatenate([np.zeros((H, 2 * H)), extra], axis=1)
    return [want[i] for i in order], [errs[i] for i in order]


@pytest.mark.parametrize("case", SEQ_CASES_REF, ids=SEQ_REF_IDS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_backward_vs_reference(rng, isa, hdtype, cell, case):
    """The backward of the kernel's own 16-bit forward results (as a layer runs it) against the reference
    backward of the same values."""
    a = seq_inputs(rng, hdtype, case, CELLS[cell])
    fwd = cell_forward(cell, a)
    if cell == "lstm":  # the reference starts from a zero cell-state gradient
        got = ops.lstm_backward(a["xs"], a["Wx"], a["Wh"], a["h0"], a["c0"], *fwd, a["dhs"])
    else:
        got = cell_backward(cell, a, fwd)
    want, errs = ref_cell_backward(cell, a, fwd, hdtype)
    for i, (g, w, e) in enumerate(zip(got, want, errs, strict=True)):
        assert g.dtype == hdtype and g.shape == w.shape, (cell, i)
        assert_within(g, w, bound(w, hdtype, e), f"{isa} {cell} {case} gradient {i}")


# ======================================================================================================
# attention against the float64 reference on the same rounded inputs
# Products of two 16-bit values are exact in float32, so a sum of K of them is within K u of the sum of their
# magnitudes; the softmax runs in float32 with the maximum subtracted (4 S u of each weight, as in
# test_softmax_with_loss) and passes on its scores' error through its Jacobian: |d p_k| <= p_k (delta_k +
# sum_j p_j delta_j). The backward ops take the forward's stored (rounded) weights, as the layers hold them,
# and so does the reference.


def softmax_err(p, delta):
    """Error bound of float32 softmax weights p (..., S) of scores within delta of the exact ones."""
    return p * (4 * p.shape[-1] * U + delta + (p * delta).sum(axis=-1, keepdims=True))


def softmax_backward_mag(p, m_dp):
    """Magnitude of ds = p * (dp - sum(p * dp)) for |dp| <= m_dp."""
    return p * (m_dp + (p * m_dp).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("case", ATT_CASES, ids=[f"N{n}S{s}L{l}H{h}" for n, s, l, h in ATT_CASES])
def test_attention_one_step_vs_reference(rng, isa, hdtype, case):
    """WeightSum and AttentionWeight, forward and backward."""
    N, S, _, H = case
    hs, h, w, dc, da = (rand(rng, s, hdtype) for s in ((N, S, H), (N, H), (N, S), (N, H), (N, S)))
    ahs, ah, aw, adc = (np.abs(f64(v)) for v in (hs, h, w, dc))
    ws = ref_tl.WeightSum()
    c = ops.weight_sum_forward(hs, w)
    rc = ws.forward(*f64(hs, w))
    assert c.dtype == hdtype
    assert_within(c, rc, bound(rc, hdtype, S * U * np.einsum("ns,nsh->nh", aw, ahs)), f"{isa} weight_sum c")
    dhs, dw = ops.weight_sum_backward(hs, w, dc)
    rdhs, rdw = ws.backward(f64(dc))
    assert dhs.dtype == dw.dtype == hdtype
    assert_within(dhs, rdhs, bound(rdhs, hdtype, U * np.abs(rdhs)), f"{isa} weight_sum dhs")  # one product
    assert_within(dw, rdw, bound(rdw, hdtype, H * U * np.einsum("nsh,nh->ns", ahs, adc)),
                  f"{isa} weight_sum da")

    aw_layer = ref_tl.AttentionWeight()
    a = ops.attention_weight_forward(hs, h)
    ra = aw_layer.forward(*f64(hs, h))
    delta = H * U * np.einsum("nsh,nh->ns", ahs, ah)  # the scores, H-term dot products
    assert a.dtype == hdtype
    assert_within(a, ra, bound(ra, hdtype, softmax_err(ra, delta)), f"{isa} attention_weight a")
    dhs, dh = ops.attention_weight_backward(hs, h, a, da)
    aw_layer.cache = (*f64(hs, h), f64(a))  # the backward of the stored weights
    rdhs, rdh = aw_layer.backward(f64(da))
    # ds: the S-term sum, the difference and the product (S + 2 roundings of m_ds); dhs = ds * h one more;
    # dh sums S terms ds * hs (S more roundings of terms within m_ds |hs|)
    m_ds = softmax_backward_mag(f64(a), np.abs(f64(da)))
    assert dhs.dtype == dh.dtype == hdtype
    assert_within(dhs, rdhs, bound(rdhs, hdtype, (S + 3) * U * m_ds[:, :, None] * ah[:, None, :]),
                  f"{isa} attention_weight dhs")
    assert_within(dh, rdh, bound(rdh, hdtype, (2 * S + 3) * U * np.einsum("ns,nsh->nh", m_ds, ahs)),
                  f"{isa} attention_weight dh")


@pytest.mark.parametrize("case", ATT_CASES, ids=[f"N{n}S{s}L{l}H{h}" for n, s, l, h in ATT_CASES])
def test_time_attention_vs_reference(rng, isa, hdtype, case):
    N, S, L, H = case
    enc, dec, dout = rand(rng, (N, S, H), hdtype), rand(rng, (N, L, H), hdtype), rand(rng, (N, L, H), hdtype)
    aenc, adec, adout = (np.abs(f64(v)) for v in (enc, dec, dout))
    out, a = ops.attention_forward(enc, dec)
    ref = ref_tl.TimeAttention()
    rout = ref.forward(*f64(enc, dec))
    ra = np.stack(ref.attention_weights, axis=1)
    e_a = softmax_err(ra, H * U * np.einsum("nlh,nsh->nls", adec, aenc))
    assert out.dtype == a.dtype == hdtype
    assert_within(a, ra, bound(ra, hdtype, e_a), f"{isa} a")
    # out = a enc with the float32 weights (within e_a): S products and sums
    e_out = np.einsum("nls,nsh->nlh", e_a, aenc) + S * U * np.einsum("nls,nsh->nlh", ra, aenc)
    assert_within(out, rout, bound(rout, hdtype, e_out), f"{isa} out")
    denc, ddec = ops.attention_backward(enc, dec, a, dout)
    for t, layer in enumerate(ref.layers):  # the reference backward of the stored weights
        layer.attention_weight_layer.cache = (f64(enc), f64(dec)[:, t], f64(a)[:, t])
        layer.weight_sum_layer.cache = (f64(enc), f64(a)[:, t])
    rdenc, rddec = ref.backward(f64(dout))
    # dA = dout enc^T (H terms), dS = A * (dA - rowsum(A * dA)) (S + 2 more); ddec = dS enc (S more), denc =
    # dS^T dec + A^T dout (two L-term sums and their sum)
    af = f64(a)
    m_ds = softmax_backward_mag(af, np.einsum("nlh,nsh->nls", adout, aenc))
    assert denc.dtype == ddec.dtype == hdtype
    e_ddec = (H + 2 * S + 2) * U * np.einsum("nls,nsh->nlh", m_ds, aenc)
    assert_within(ddec, rddec, bound(rddec, hdtype, e_ddec), f"{isa} dhs_dec")
    m_denc = np.einsum("nls,nlh->nsh", m_ds, adec) + np.einsum("nls,nlh->nsh", af, adout)
    assert_within(denc, rdenc, bound(rdenc, hdtype, (H + S + 2 * L + 3) * U * m_denc), f"{isa} dhs_enc")


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "dropout"])
@pytest.mark.parametrize("case", [(1, 1, 1, 1, 1), (3, 5, 7, 4, 6), (6, 16, 9, 32, 8)],
                         ids=["B1L1S1", "B3L5S7", "B6L16S9"])
def test_sdpa_vs_reference(rng, isa, hdtype, case, masked):
    B, L, S, E, F = case
    q, k, v, dout = (rand(rng, s, hdtype) for s in ((B, L, E), (B, S, E), (B, S, F), (B, L, F)))
    mask = (rng.random((B, L, S)) > 0.3).astype(hdtype) * hdtype.type(1 / 0.7) if masked else None
    scale = 1 / np.sqrt(E)
    aq, ak, av, adout = (np.abs(f64(x)) for x in (q, k, v, dout))
    m = None if mask is None else f64(mask)
    am = 1.0 if m is None else np.abs(m)
    out, p = ops.sdpa_forward(q, k, v, scale, mask=mask)
    rout, rp = ref_sdpa.sdpa_forward(*f64(q, k, v), scale, m)
    # scores: E products summed, times the float32 scale (itself one rounding of the double): E + 2
    e_p = softmax_err(rp, (E + 2) * U * scale * np.einsum("ble,bse->bls", aq, ak))
    assert out.dtype == p.dtype == hdtype
    assert_within(p, rp, bound(rp, hdtype, e_p), f"{isa} p")
    # out = (p * mask) v: the product with the mask (one rounding) and S-term sums
    apm = rp * am
    e_out = np.einsum("bls,bsf->blf", am * e_p, av) + (S + 1) * U * np.einsum("bls,bsf->blf", apm, av)
    assert_within(out, rout, bound(rout, hdtype, e_out), f"{isa} out")
    dq, dk, dv = ops.sdpa_backward(q, k, v, p, dout, scale, mask=mask)
    pf = f64(p)
    rdq, rdk, rdv = ref_sdpa.sdpa_backward(*f64(q, k, v), pf, f64(dout), scale, m)
    # dP = dout v^T (F terms), times the mask (one), dS (S + 2 more); dq, dk: S- or L-term sums times the
    # scale (two more); dv = (p * mask)^T dout (one for the product, L terms)
    m_ds = softmax_backward_mag(pf, am * np.einsum("blf,bsf->bls", adout, av))
    assert dq.dtype == dk.dtype == dv.dtype == hdtype
    e_dq = (F + 2 * S + 5) * U * scale * np.einsum("bls,bse->ble", m_ds, ak)
    e_dk = (F + S + L + 5) * U * scale * np.einsum("bls,ble->bse", m_ds, aq)
    assert_within(dq, rdq, bound(rdq, hdtype, e_dq), f"{isa} dq")
    assert_within(dk, rdk, bound(rdk, hdtype, e_dk), f"{isa} dk")
    assert_within(dv, rdv, bound(rdv, hdtype, (L + 1) * U * np.einsum("bls,blf->bsf", pf * am, adout)),
                  f"{isa} dv")


# ======================================================================================================
# every layer of fastconv.time_layers and every sequence model in the 16-bit types


def time_layer_runs(rng, hd):
    """name -> a thunk that runs one small forward and backward of that layer of fastconv.time_layers in
    ``hd`` and returns every array it produced (outputs, input gradients, the layer's grads)."""
    from fastconv import time_layers as tl

    N, T, D, H, V = 2, 3, 4, 5, 7

    def r(*shape, scale=1.0):
        return rand(rng, shape, hd, scale)

    def cell(cls, g):
        return cls(r(D, g * H, scale=0.5), r(H, g * H, scale=0.5), r(g * H))

    def lstm_params():
        return r(D, 4 * H, scale=0.5), r(H, 4 * H, scale=0.5), r(4 * H)

    xs, x, h, c, dhs, dh = r(N, T, D), r(N, D), r(N, H), r(N, H), r(N, T, H), r(N, H)
    ids, ts = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))

    def run(layer, fwd_args, bwd_args):
        out = layer.forward(*fwd_args)
        outs = out if isinstance(out, tuple) else (out,)
        back = layer.backward(*(bwd_args(outs) if callable(bwd_args) else bwd_args))
        back = back if isinstance(back, tuple) else (back,)
        return [a for a in (*outs, *back, *getattr(layer, "grads", [])) if isinstance(a, np.ndarray)]

    def ones(outs):
        return tuple(np.ones_like(o) for o in outs)

    E, heads = 4, 2

    def transformer():
        norms = [r(D) for _ in range(4)]  # gamma1, beta1, gamma2, beta2
        ffn = (r(D, 8, scale=0.5), r(8), r(8, D, scale=0.5), r(D))  # W1, b1, W2, b2
        return tl.TransformerEncoderLayer(mha, *ffn, *norms, heads, dropout=0.2)

    mha = [r(D, heads * E, scale=0.5), r(heads * E), r(D, heads * E, scale=0.5), r(heads * E),
           r(D, heads * E, scale=0.5), r(heads * E), r(heads * E, D, scale=0.5), r(D)]
    return {
        "TimeRNN": lambda: run(cell(tl.TimeRNN, 1), (xs,), (dhs,)),
        "TimeLSTM": lambda: run(cell(tl.TimeLSTM, 4), (xs,), (dhs,)),
        "TimeGRU": lambda: run(cell(tl.TimeGRU, 3), (xs,), (dhs,)),
        "TimeBiLSTM": lambda: run(tl.TimeBiLSTM(*lstm_params(), *lstm_params()), (xs,), (r(N, T, 2 * H),)),
        "RNN": lambda: run(cell(tl.RNN, 1), (x, h), (dh,)),
        "LSTM": lambda: run(cell(tl.LSTM, 4), (x, h, c), (dh, dh)),
        "GRU": lambda: run(cell(tl.GRU, 3), (x, h), (dh,)),
        "Embedding": lambda: run(tl.Embedding(r(V, D)), (ids[:, 0],), (r(N, D),)),
        "TimeEmbedding": lambda: run(tl.TimeEmbedding(r(V, D)), (ids,), (r(N, T, D),)),
        "MatMul": lambda: run(tl.MatMul(r(D, H)), (x,), ones),
        "Affine": lambda: run(tl.Affine(r(D, H), r(H)), (x,), ones),
        "TimeAffine": lambda: run(tl.TimeAffine(r(D, V), r(V)), (xs,), ones),
        "Sigmoid": lambda: run(tl.Sigmoid(), (x,), ones),
        "SoftmaxWithLoss": lambda: run(tl.SoftmaxWithLoss(), (r(N, V), ts[:, 0]), ()),
        "TimeSoftmaxWithLoss": lambda: run(tl.TimeSoftmaxWithLoss(), (r(N, T, V), ts), ()),
        "SigmoidWithLoss": lambda: run(tl.SigmoidWithLoss(), (r(N, 1), ts[:, :1] % 2), ()),
        "TimeSigmoidWithLoss": lambda: run(tl.TimeSigmoidWithLoss(), (r(N, T), ts % 2), ()),
        "Dropout": lambda: run(tl.Dropout(0.3), (x,), ones),
        "TimeDropout": lambda: run(tl.TimeDropout(0.3), (xs,), ones),
        "WeightSum": lambda: run(tl.WeightSum(), (r(N, T, H), r(N, T)), (dh,)),
        "AttentionWeight": lambda: run(tl.AttentionWeight(), (r(N, T, H), h), (r(N, T),)),
        "Attention": lambda: run(tl.Attention(), (r(N, T, H), h), (dh,)),
        "TimeAttention": lambda: run(tl.TimeAttention(), (r(N, T + 1, H), r(N, T, H)), (r(N, T, H),)),
        "LayerNorm": lambda: run(tl.LayerNorm(r(D), r(D)), (xs,), ones),
        "MultiHeadAttention": lambda: run(tl.MultiHeadAttention(*mha, num_heads=heads, dropout=0.2), (xs,),
                                          ones),
        "TransformerEncoderLayer": lambda: run(transformer(), (xs,), ones),
    }


def test_every_time_layer_in_half(rng, hdtype):
    """Every layer of fastconv.time_layers runs a forward and a backward in the type and keeps it (a layer
    added to the module without a case here fails)."""
    from fastconv import time_layers as tl

    runs = time_layer_runs(rng, hdtype)
    layer_names = {n for n in tl.__all__ if isinstance(getattr(tl, n), type)}
    assert set(runs) == layer_names, sorted(layer_names ^ set(runs))
    for name, go in runs.items():
        arrays = go()
        assert arrays, name
        for a in arrays:
            assert a.dtype == hdtype and np.all(np.isfinite(f64(a))), (name, a.dtype)


SEQ_MODELS = ["BetterRnnlm", "Seq2seq", "PeekySeq2seq", "AttentionSeq2seq", "RnnClassifier-rnn",
              "RnnClassifier-lstm", "TransformerClassifier"]


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_sequence_models_in_half(rng, hdtype, name):
    """Each sequence model builds in the type; its forward (a finite loss), backward (gradients of the type)
    and generation run."""
    from fastconv.models import sequence as sq

    V = 11
    xs, ts = rng.integers(0, V, (2, 5)), rng.integers(0, V, (2, 5))
    cls, _, cell = name.partition("-")
    if cls == "BetterRnnlm":
        model = sq.BetterRnnlm(V, 6, 6, 0.5, rng=rng, dtype=hdtype)
    elif cls == "RnnClassifier":
        model = sq.RnnClassifier(V, 4, 5, 3, cell, rng=rng, dtype=hdtype)
    elif cls == "TransformerClassifier":
        model = sq.TransformerClassifier(V, 4, 2, 8, 3, max_len=5, dropout=0.5, rng=rng, dtype=hdtype)
    else:
        model = getattr(sq, cls)(V, 4, 5, rng=rng, dtype=hdtype)
    labels = np.array([0, 2]) if cls in ("RnnClassifier", "TransformerClassifier") else ts
    loss = model.forward(xs, labels)
    assert np.isfinite(float(loss)), name
    model.backward()
    assert all(p.dtype == hdtype for p in model.params), name
    for g in model.grads:
        assert g.dtype == hdtype and np.all(np.isfinite(f64(g))), name
    if cls == "BetterRnnlm":
        model.reset_state()
        assert len(model.generate(0, sample_size=4)) == 4
    elif "Seq2seq" in cls:
        assert model.generate(xs, 0, 3).shape == (2, 3)
