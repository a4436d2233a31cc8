"""Convolution geometry beyond the book's (per-axis stride, per-side and "same" / "valid" padding, dilation,
no bias) and grouped / depthwise convolution: fastconv.ops.conv_forward / conv_backward and layers.Convolution
against fastconv.reference.layers.Convolution (float64 oracle), every ISA (the depthwise kernel has a variant
per ISA), against torch where it is importable, central differences, and bad input naming the argument.
Pooling with "same" and per-side padding is here too (the same padding parser)."""

import numpy as np
import pytest
from conftest import TOL, TOL_DOT, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.functions import numerical_gradient
from fastconv.reference import layers as ref_layers

# (N, C, H, W, FN, FH, FW, stride, pad, dilation, groups, bias): per-axis strides, "same" with odd and even
# filters (asymmetric: the odd pixel at the bottom / right) and stride 2, "valid", pairs and 4-tuples,
# dilation
# on the stride-1 gather path and the im2col path, two groups and four, depthwise (groups == C) with
# multiplier 1 and 2, with stride 2, dilation, per-side padding and a 5x5 filter, and no bias.
GEOM_CASES = [
    (2, 3, 7, 9, 4, 3, 3, (2, 1), 1, 1, 1, True),
    (2, 3, 8, 7, 5, 3, 3, 1, "same", 1, 1, True),
    (1, 2, 8, 8, 3, 4, 4, 1, "same", 1, 1, True),
    (2, 3, 9, 10, 4, 5, 5, 2, "same", 1, 1, False),
    (2, 2, 7, 6, 3, 2, 3, (2, 3), "same", 1, 1, True),
    (3, 2, 6, 7, 2, 3, 2, 1, "valid", 1, 1, True),
    (2, 3, 6, 8, 4, 3, 3, 1, (1, 2), 1, 1, True),
    (2, 3, 7, 8, 4, 3, 3, 1, (0, 2, 1, 0), 1, 1, True),
    (2, 3, 7, 8, 4, 3, 3, 2, (2, 0, 0, 1), 1, 1, True),
    # a left pad and no bottom pad at stride 1 (the gather path's padded image ends with the last row's
    # border)
    (2, 3, 7, 8, 4, 3, 3, 1, (1, 0, 2, 0), 1, 1, True),
    (2, 1, 6, 5, 2, 1, 1, 1, (0, 0, 1, 0), 1, 1, False),
    (2, 3, 9, 9, 4, 3, 3, 1, 2, 2, 1, True),
    (2, 3, 11, 9, 5, 3, 2, 1, "same", (2, 3), 1, True),
    (2, 3, 11, 10, 4, 3, 3, 2, 1, 2, 1, False),
    (2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 2, True),
    (2, 8, 6, 7, 8, 3, 3, 2, "same", 1, 4, True),
    (3, 5, 9, 8, 5, 3, 3, 1, 1, 1, 5, True),
    (2, 4, 8, 9, 8, 3, 3, 1, "same", 1, 4, True),
    (2, 6, 10, 9, 6, 3, 3, 2, "same", 1, 6, False),
    (2, 3, 12, 11, 3, 3, 3, 1, "same", 2, 3, True),
    (1, 4, 9, 7, 4, 5, 5, 1, (2, 1, 0, 2), 1, 4, True),
    (2, 3, 8, 8, 6, 4, 2, (2, 1), (1, 2, 0, 1), (1, 2), 3, True),
    (4, 16, 28, 28, 16, 3, 3, 1, 1, 1, 16, True),
    (2, 1, 6, 6, 2, 3, 3, 1, 1, 1, 1, False),
    # depthwise at strides 2 to 4, per axis, with dilation, pads past the window, a 1x1 filter and ragged
    # channel blocks: channels-last blocks with multiplier 1; the wide grid's phase planes with multiplier 2
    # (a 1x1 filter leaves phases without taps); stride 5 row by row
    (2, 4, 13, 11, 4, 3, 3, 3, (1, 2, 0, 1), 2, 4, True),
    (2, 3, 9, 10, 3, 1, 1, 2, 0, 1, 3, False),
    (1, 2, 12, 9, 4, 5, 3, (4, 1), "same", 1, 2, True),
    (2, 3, 10, 10, 3, 3, 3, (1, 2), (0, 1), 1, 3, True),
    (2, 3, 16, 15, 3, 5, 5, 2, (2, 1, 3, 2), (1, 2), 3, False),
    (2, 2, 7, 8, 2, 3, 3, 1, (3, 0, 1, 3), 1, 2, True),
    (2, 2, 11, 12, 2, 3, 3, 5, 2, 1, 2, True),
    (2, 21, 6, 5, 21, 3, 3, 1, "same", 1, 21, True),
    (2, 37, 19, 17, 37, 3, 3, 2, "same", 1, 37, False),
]


def geom_id(c):
    N, C, H, W, FN, FH, FW, s, p, d, g, b = c
    return f"x{N}x{C}x{H}x{W}-W{FN}x{FH}x{FW}-s{s}-p{p}-d{d}-g{g}" + ("" if b else "-nobias")


GEOM_IDS = [geom_id(c) for c in GEOM_CASES]


def geom_inputs(rng, case, dtype):
    N, C, H, W, FN, FH, FW, stride, pad, dilation, groups, bias = case
    x = randn(rng, (N, C, H, W), dtype)
    Wt = randn(rng, (FN, C // groups, FH, FW), dtype)
    b = randn(rng, (FN,), dtype) if bias else None
    kw = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
    return x, Wt, b, kw


def geom_reference(x, Wt, b, kw, dout=None, rng=None):
    ref = ref_layers.Convolution(f64(Wt), None if b is None else f64(b), **kw)
    out = ref.forward(f64(x))
    if dout is None:
        dout = rng.standard_normal(out.shape)
    dx = ref.backward(f64(dout))
    return out, dx, ref.dW, ref.db, dout


@pytest.mark.parametrize("case", GEOM_CASES, ids=GEOM_IDS)
def test_conv_geometry_ops(rng, device, isa, dtype, case):
    x, Wt, b, kw = geom_inputs(rng, case, dtype)
    r_out, r_dx, r_dW, r_db, dout = geom_reference(x, Wt, b, kw, rng=rng)
    dout = dout.astype(dtype)
    r_out, r_dx, r_dW, r_db, _ = geom_reference(x, Wt, b, kw, dout)

    def dev(a):
        return to_device(a, device)

    out = to_host(ops.conv_forward(dev(x), dev(Wt), dev(b), **kw))
    assert out.dtype == dtype and out.shape == r_out.shape
    np.testing.assert_allclose(out, r_out, **TOL_DOT[dtype], err_msg=f"{isa} {case} out")
    dx, dW, db = map(to_host, ops.conv_backward(dev(x), dev(Wt), dev(dout), **kw))
    want = (("dx", dx, r_dx), ("dW", dW, r_dW)) + ((("db", db, r_db),) if b is not None else ())
    for name, got, ref in want:
        assert got.dtype == dtype and got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, **TOL_DOT[dtype], err_msg=f"{isa} {case} {name}")


@pytest.mark.parametrize("case", GEOM_CASES, ids=GEOM_IDS)
def test_convolution_layer_geometry(rng, device, dtype, case):
    x, Wt, b, kw = geom_inputs(rng, case, dtype)
    layer = layers.Convolution(to_device(Wt, device), to_device(b, device), **kw)
    out = to_host(layer.forward(to_device(x, device)))
    dout = randn(rng, out.shape, dtype)
    r_out, r_dx, r_dW, r_db, _ = geom_reference(x, Wt, b, kw, dout)
    np.testing.assert_allclose(out, r_out, **TOL_DOT[dtype], err_msg=f"{case} out")
    dx = to_host(layer.backward(to_device(dout, device)))
    np.testing.assert_allclose(dx, r_dx, **TOL_DOT[dtype], err_msg=f"{case} dx")
    np.testing.assert_allclose(to_host(layer.dW), r_dW, **TOL_DOT[dtype], err_msg=f"{case} dW")
    if b is None:
        assert layer.db is None and r_db is None
    else:
        np.testing.assert_allclose(to_host(layer.db), r_db, **TOL_DOT[dtype], err_msg=f"{case} db")
    # backward_params: the same dW, no input gradient
    layer.forward(to_device(x, device))
    assert layer.backward_params(to_device(dout, device)) is None
    np.testing.assert_allclose(to_host(layer.dW), r_dW, **TOL_DOT[dtype], err_msg=f"{case} dW (params only)")


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("case", GEOM_CASES, ids=GEOM_IDS)
def test_conv_geometry_fused_relu_bit_for_bit(rng, isa, dtype, case):
    """relu=True on every path (gather, im2col, grouped, depthwise): the bits of relu_forward of the
    result."""
    x, Wt, b, kw = geom_inputs(rng, case, dtype)
    want = ops.relu_forward(ops.conv_forward(x, Wt, b, **kw))
    got = ops.conv_forward(x, Wt, b, relu=True, **kw)
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{isa} {case}")


# Depthwise shapes big enough for the kernels' parallel regions (N*FN*OH*OW >= 2**14: all GEOM_CASES but one
# run on one thread whatever the thread count): the wide path (multiplier 2, strides 1 and 3) and ragged
# channels-last blocks (the input gradient's gather at stride 1, its scatter at stride 2).
PARALLEL_DW_CASES = [
    (4, 8, 32, 32, 16, 3, 3, 1, 1, 1, 8, True),
    (4, 8, 50, 50, 16, 3, 3, 3, "same", 1, 8, False),
    (3, 21, 24, 24, 21, 3, 3, 1, 1, 1, 21, True),
    (3, 21, 48, 48, 21, 3, 3, 2, 1, 1, 21, True),
]
THREAD_CASES = [c for c in GEOM_CASES if c[10] > 1] + PARALLEL_DW_CASES


@pytest.mark.parametrize("case", THREAD_CASES, ids=[geom_id(c) for c in THREAD_CASES])
def test_grouped_and_depthwise_same_bits_on_any_thread_count(rng, num_threads, dtype, case):
    """Grouped and depthwise gradients are summed in an order fixed by the shape: 1, 2 and 3 threads agree."""
    x, Wt, b, kw = geom_inputs(rng, case, dtype)
    dout = randn(rng, ops.conv_forward(x, Wt, b, **kw).shape, dtype)
    results = []
    for n in (1, 2, 3):
        num_threads(n)
        results.append((ops.conv_forward(x, Wt, b, **kw), *ops.conv_backward(x, Wt, dout, **kw)))
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(_bits(a), _bits(c))


def test_book_call_unchanged_by_explicit_geometry(rng, dtype):
    """The book's Convolution(W, b, stride, pad) and the same geometry spelt out (pairs, a 4-tuple, dilation
    1,
    groups 1) give the same bits: one kernel path."""
    x, Wt, b = randn(rng, (3, 4, 9, 9), dtype), randn(rng, (5, 4, 3, 3), dtype), randn(rng, (5,), dtype)
    for s, p in ((1, 1), (2, 0), (2, 1)):
        a = ops.conv_forward(x, Wt, b, s, p)
        c = ops.conv_forward(x, Wt, b, (s, s), (p, p, p, p), dilation=(1, 1), groups=1)
        np.testing.assert_array_equal(_bits(a), _bits(c))


@pytest.mark.parametrize(
    "H, FH, stride, dilation, want",
    [
        (7, 3, 1, 1, (1, 1)),
        (8, 4, 1, 1, (1, 2)),
        (9, 5, 2, 1, (2, 2)),
        (8, 3, 2, 1, (0, 1)),
        (7, 2, 3, 1, (0, 1)),
        (10, 3, 1, 2, (2, 2)),
        (6, 1, 2, 1, (0, 0)),
    ],
)
def test_same_padding_is_tensorflows(H, FH, stride, dilation, want):
    """'same': output ceil(H / stride), padding (total // 2 above, the rest below)."""
    x, Wt = np.ones((1, 1, H, H)), np.ones((1, 1, FH, FH))
    out = ops.conv_forward(x, Wt, None, stride, "same", dilation=dilation)
    assert out.shape[2:] == (-(-H // stride),) * 2
    ref = ref_layers.Convolution(Wt, None, stride, (want[0], want[1], want[0], want[1]), dilation)
    np.testing.assert_allclose(out, ref.forward(x), rtol=1e-12)


# ======================================================================================================
# against torch (where it is installed)


@pytest.mark.parametrize("case", GEOM_CASES, ids=GEOM_IDS)
def test_conv_geometry_against_torch(rng, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, Wt, b, kw = geom_inputs(rng, case, np.float64)
    out = ops.conv_forward(x, Wt, b, **kw)
    H, W, FH, FW = x.shape[2], x.shape[3], Wt.shape[2], Wt.shape[3]
    sh, sw = kw["stride"] if isinstance(kw["stride"], tuple) else (kw["stride"],) * 2
    dh, dw = kw["dilation"] if isinstance(kw["dilation"], tuple) else (kw["dilation"],) * 2
    pad = kw["pad"]
    if pad == "same":  # TensorFlow's rule, spelt out for torch

        def side(n, k, s, d):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            return total // 2, total - total // 2

        pad = (*side(H, FH, sh, dh), *side(W, FW, sw, dw))
    elif pad == "valid":
        pad = 0
    if isinstance(pad, int):
        pad = (pad,) * 4
    elif len(pad) == 2:
        pad = (pad[0], pad[0], pad[1], pad[1])
    xt = F.pad(torch.tensor(x), (pad[2], pad[3], pad[0], pad[1]))
    want = F.conv2d(
        xt,
        torch.tensor(Wt),
        None if b is None else torch.tensor(b),
        stride=(sh, sw),
        dilation=(dh, dw),
        groups=kw["groups"],
    ).numpy()
    np.testing.assert_allclose(out, want, **TOL_DOT[np.float64])


# ======================================================================================================
# central differences (float64)


@pytest.mark.parametrize(
    "case", [GEOM_CASES[i] for i in (2, 8, 11, 13, 16, 19)], ids=[GEOM_IDS[i] for i in (2, 8, 11, 13, 16, 19)]
)
def test_convolution_geometry_numerical_gradient(rng, case):
    """dx, dW and db of layers.Convolution against central differences of sum(out * dout)."""
    bias = case[-1]
    x, Wt, b, kw = geom_inputs(rng, (1,) + case[1:], np.float64)
    layer = layers.Convolution(Wt, b, **kw)
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)

    def loss(_):
        return float(np.sum(layer.forward(x) * dout))

    for name, got, arr in (("dx", dx, x), ("dW", layer.dW, Wt)) + ((("db", layer.db, b),) if bias else ()):
        num = numerical_gradient(loss, arr)
        np.testing.assert_allclose(got, num, rtol=1e-5, atol=1e-7, err_msg=f"{case} {name}")


# ======================================================================================================
# pooling: "same", per-side padding, per-axis stride

# (N, C, H, W, PH, PW, stride, pad)
POOL_GEOM_CASES = [
    (2, 3, 7, 7, 2, 2, 2, "same"),
    (2, 2, 6, 9, 3, 3, 2, "same"),
    (1, 2, 5, 5, 3, 3, 1, "same"),
    (2, 2, 7, 8, 3, 2, (2, 1), "valid"),
    (2, 3, 6, 5, 3, 3, (2, 1), (1, 0, 1, 2)),
    (1, 2, 7, 6, 2, 3, 1, (1, 0)),
    (2, 16, 28, 28, 2, 2, 2, "same"),
]
POOL_GEOM_IDS = [f"x{c[0]}x{c[1]}x{c[2]}x{c[3]}-P{c[4]}x{c[5]}-s{c[6]}-p{c[7]}" for c in POOL_GEOM_CASES]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_GEOM_CASES, ids=POOL_GEOM_IDS)
def test_pooling_geometry(rng, device, dtype, kind, case):
    N, C, H, W, PH, PW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    layer_cls, ref_cls = (
        (layers.Pooling, ref_layers.Pooling) if kind == "max" else (layers.AvgPooling, ref_layers.AvgPooling)
    )
    layer, ref = layer_cls(PH, PW, stride, pad), ref_cls(PH, PW, stride, pad)
    out = to_host(layer.forward(to_device(x, device)))
    r_out = ref.forward(f64(x))
    assert out.dtype == dtype and out.shape == r_out.shape
    if pad == "same":
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        assert out.shape[2:] == (-(-H // sh), -(-W // sw))
    np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"{case} out")
    dout = randn(rng, out.shape, dtype)
    dx = to_host(layer.backward(to_device(dout, device)))
    np.testing.assert_allclose(dx, ref.backward(f64(dout)), **TOL[dtype], err_msg=f"{case} dx")


def test_maxpool_same_against_torch(rng):
    """Max pooling 'same' (padding never wins) against torch's max_pool2d on an input padded with -inf."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 9))
    out = ops.maxpool_forward(x, 3, 3, 2, "same")[0]
    # 'same' for 7 and 9 with a 3x3 window and stride 2: (1, 1) and (1, 1)
    xt = torch.nn.functional.pad(torch.tensor(x), (1, 1, 1, 1), value=-np.inf)
    want = torch.nn.functional.max_pool2d(xt, 3, 2).numpy()
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_same_numerical_gradient(rng, kind):
    x = rng.standard_normal((1, 2, 5, 6))
    layer = (layers.Pooling if kind == "max" else layers.AvgPooling)(2, 3, (2, 2), "same")
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    num = numerical_gradient(lambda _: float(np.sum(layer.forward(x) * dout)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-5, atol=1e-7)


# ======================================================================================================
# bad input: one line naming the argument, the value seen and what was expected

X = np.zeros((2, 4, 8, 8))
W4 = np.zeros((6, 2, 3, 3))

BAD = [
    (
        "groups 3 of 4 channels",
        lambda: ops.conv_forward(X, np.zeros((6, 1, 3, 3)), None, groups=3),
        ValueError,
        r"^groups: 3 does not divide the 4 input channels of x",
    ),
    (
        "groups 4 of 6 filters",
        lambda: ops.conv_forward(X, np.zeros((6, 1, 3, 3)), None, groups=4),
        ValueError,
        r"^groups: 4 does not divide the 6 filters of W",
    ),
    ("groups 0", lambda: ops.conv_forward(X, W4, None, groups=0), ValueError, r"^groups must be >= 1, got 0"),
    (
        "groups float",
        lambda: ops.conv_forward(X, W4, None, groups=2.0),
        TypeError,
        r"^groups: expected an int",
    ),
    (
        "W channels per group",
        lambda: ops.conv_forward(X, np.zeros((6, 1, 3, 3)), None, groups=2),
        ValueError,
        r"^W: shape \(6, 1, 3, 3\) expects 2 input channels \(1 per group, groups=2\), "
        r"but x: shape \(2, 4, 8, 8\)",
    ),
    (
        "dilation -1",
        lambda: ops.conv_forward(X, W4, None, dilation=-1, groups=2),
        ValueError,
        r"^dilation must be >= 1, got -1",
    ),
    (
        "dilation 0 pair",
        lambda: ops.conv_forward(X, W4, None, dilation=(1, 0), groups=2),
        ValueError,
        r"^dilation must be >= 1, got 0",
    ),
    (
        "dilation too wide",
        lambda: ops.conv_forward(X, W4, None, dilation=4, groups=2),
        ValueError,
        r"^filter 3x3 \(dilated 9x9\) is larger than the padded input 8x8",
    ),
    (
        "stride triple",
        lambda: ops.conv_forward(X, W4, None, (1, 1, 1), groups=2),
        TypeError,
        r"^stride: expected an int or a pair \(h, w\), got \(1, 1, 1\)",
    ),
    (
        "stride 0 pair",
        lambda: ops.conv_forward(X, W4, None, (1, 0), groups=2),
        ValueError,
        r"^stride must be >= 1, got 0",
    ),
    (
        "pad string",
        lambda: ops.conv_forward(X, W4, None, 1, "full", groups=2),
        ValueError,
        r"^pad: expected an int, a pair \(ph, pw\), \(top, bottom, left, right\), 'same', 'valid', "
        r"got 'full'",
    ),
    (
        "pad triple",
        lambda: ops.conv_forward(X, W4, None, 1, (1, 1, 1), groups=2),
        TypeError,
        r"^pad: expected an int, a pair \(ph, pw\) or \(top, bottom, left, right\), got \(1, 1, 1\)",
    ),
    (
        "pad negative side",
        lambda: ops.conv_forward(X, W4, None, 1, (1, -1, 0, 0), groups=2),
        ValueError,
        r"^pad must be >= 0, got -1",
    ),
    (
        "b with b=None shape",
        lambda: ops.conv_forward(X, W4, np.zeros(5), groups=2),
        ValueError,
        r"^b: shape \(5,\), expected \(6,\)",
    ),
    (
        "dout shape",
        lambda: ops.conv_backward(X, W4, np.zeros((2, 6, 8, 8)), 1, "valid", groups=2),
        ValueError,
        r"^dout: shape \(2, 6, 8, 8\), expected \(2, 6, 6, 6\)",
    ),
    (
        "pool same pad too big",
        lambda: ops.maxpool_forward(X, 2, 2, 2, (2, 0, 0, 0)),
        ValueError,
        r"^pad must be smaller than the pool window 2x2, got pad=\(2, 0, 0, 0\)",
    ),
    ("pool pad string", lambda: ops.avgpool_forward(X, 2, 2, 2, "half"), ValueError, r"^pad: expected"),
    (
        "pool stride triple",
        lambda: layers.Pooling(2, 2, (2, 2, 2)).forward(X),
        TypeError,
        r"^stride: expected",
    ),
]


@pytest.mark.parametrize("name, call, exc, pattern", BAD, ids=[b[0] for b in BAD])
def test_conv_geometry_bad_input(name, call, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_conv_kernel_checks_groups_itself():
    """The binding's one geometry check (common/geom.h) rejects a group count the Python checks would."""
    from fastconv import _cpu

    out = np.zeros((2, 6, 6, 6))
    with pytest.raises(ValueError, match=r"^groups: 3 does not divide the 4 input channels of x"):
        _cpu.conv_forward_f64(X, np.zeros((6, 1, 3, 3)), None, out, (1, 1), (0, 0, 0, 0), (1, 1), 3)
    with pytest.raises(ValueError, match=r"^W: shape \(6, 1, 3, 3\), expected \(6, 2, 3, 3\)"):
        _cpu.conv_forward_f64(X, np.zeros((6, 1, 3, 3)), None, out, (1, 1), (0, 0, 0, 0), (1, 1), 2)
    with pytest.raises(ValueError, match=r"^dilation must be > 0, got \(0, 1\)"):
        _cpu.conv_forward_f64(X, W4, None, out, (1, 1), (0, 0, 0, 0), (0, 1), 2)
    with pytest.raises(ValueError, match=r"^pad must be >= 0, got \(0, -1, 0, 0\)"):
        _cpu.conv_forward_f64(X, W4, None, out, (1, 1), (0, -1, 0, 0), (1, 1), 2)


# ======================================================================================================
# the reference itself: its general path agrees with its im2col path, and with central differences


def test_reference_general_path_matches_book_path(rng):
    x, Wt, b = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for s, p in ((1, 1), (2, 0), (2, 2)):
        book = ref_layers.Convolution(Wt, b, s, p)
        general = ref_layers.Convolution(Wt, b, (s, s), (p, p, p, p))  # tuples take the general path
        out = book.forward(x)
        np.testing.assert_allclose(general.forward(x), out, rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        np.testing.assert_allclose(general.backward(dout), book.backward(dout), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(general.dW, book.dW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(general.db, book.db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "case", [GEOM_CASES[i] for i in (4, 10, 13, 19)], ids=[GEOM_IDS[i] for i in (4, 10, 13, 19)]
)
def test_reference_convolution_numerical_gradient(rng, case):
    x, Wt, b, kw = geom_inputs(rng, (1,) + case[1:], np.float64)
    ref = ref_layers.Convolution(Wt, b, **kw)
    dout = rng.standard_normal(ref.forward(x).shape)
    dx = ref.backward(dout)

    def loss(_):
        return float(np.sum(ref.forward(x) * dout))

    for got, arr in ((dx, x), (ref.dW, Wt)):
        np.testing.assert_allclose(got, numerical_gradient(loss, arr), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("col", [0, 7, 8])
@pytest.mark.parametrize("stride", [1, 2, (3, 2)])
@pytest.mark.parametrize("where", ["x", "dout", "W"])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_nonfinite_inputs_propagate_like_reference(rng, isa, value, col, stride, where, multiplier):
    """The depthwise kernels read the plane in padded layouts (channels-last blocks with multiplier 1, the
    wide grid with its dropped columns, split into phase planes at stride > 1, with multiplier 2): an inf /
    NaN in x's or dout's first or last columns, or in a filter's first row of taps (which the stride-1 input
    gradient's gather would pair with dout's zero padding), must still reach exactly the outputs and gradients
    the reference pairs it with."""
    x = rng.standard_normal((2, 3, 7, 9))
    Wt, b = rng.standard_normal((3 * multiplier, 1, 3, 3)), rng.standard_normal(3 * multiplier)
    kw = {"stride": stride, "pad": "same", "dilation": 1, "groups": 3}
    if where == "x":
        x[1, 2, 3, col] = value
    if where == "W":
        Wt[3 * multiplier - 1, 0, 0, col % 3] = value
    out = ops.conv_forward(x, Wt, b, **kw)
    dout = rng.standard_normal(out.shape)
    if where == "dout":
        dout[1, 2, -1, min(col, out.shape[3] - 1)] = value
    r_out, r_dx, r_dW, r_db, _ = geom_reference(x, Wt, b, kw, dout)
    dx, dW, db = ops.conv_backward(x, Wt, dout, **kw)
    for name, got, want in (("out", out, r_out), ("dx", dx, r_dx), ("dW", dW, r_dW), ("db", db, r_db)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{isa} {name} NaN pattern")
        np.testing.assert_allclose(got, want, **TOL_DOT[np.float64], equal_nan=True, err_msg=f"{isa} {name}")


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_zero_sums_are_positive_zero_like_reference(rng, isa, dtype, multiplier):
    """A sum of -0.0 products (x and dout zero, negative weights, no bias) is +0.0 in the output and the input
    gradient, as in the reference, on every depthwise path (the channels-last blocks and their stride-1 gather
    start each sum with a product)."""
    x = np.zeros((2, 3, 5, 6), dtype)
    Wt = (-1.0 - np.abs(randn(rng, (3 * multiplier, 1, 3, 3), dtype))).astype(dtype)
    kw = {"stride": 1, "pad": 1, "dilation": 1, "groups": 3}
    out = ops.conv_forward(x, Wt, None, **kw)
    dx, _, _ = ops.conv_backward(x, Wt, np.zeros_like(out), **kw)
    r_out, r_dx, _, _, _ = geom_reference(x, Wt, None, kw, np.zeros(out.shape))
    assert not np.signbit(r_out).any() and not np.signbit(r_dx).any()
    np.testing.assert_array_equal(np.signbit(out), np.signbit(r_out), err_msg=f"{isa} out")
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(r_dx), err_msg=f"{isa} dx")
