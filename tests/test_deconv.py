"""Transposed convolution: fastconv.ops.deconv_forward / deconv_backward and layers.Deconvolution against
fastconv.reference.layers.Deconvolution (written from the definition: each input pixel scatters its
products), every ISA, against torch.nn.functional.conv_transpose2d where torch is importable, central
differences, and bad input naming the argument."""

import numpy as np
import pytest
from conftest import TOL_DOT, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.functions import numerical_gradient
from fastconv.reference import layers as ref_layers

# (N, C_in, H, W, C_out, FH, FW, stride, pad, output_padding, bias): stride 1 (the flipped-convolution path)
# and 2, 3, per-axis strides, output padding, per-side padding, Keras' "same" (output H*stride, with FH > s,
# FH == s and FH < s) and "valid", non-square filters, no bias, and DCGAN's generator layers (5x5, stride 1
# and 2, "same") at a small batch.
DECONV_CASES = [
    (2, 3, 5, 6, 4, 3, 3, 1, 0, 0, True),
    (2, 3, 5, 6, 4, 3, 3, 1, 1, 0, True),
    (1, 2, 4, 4, 3, 3, 3, 2, 1, 1, True),
    (2, 3, 5, 4, 2, 4, 4, 2, 1, 0, False),
    (2, 2, 4, 5, 3, 3, 2, (2, 3), 0, (1, 2), True),
    (2, 3, 4, 7, 3, 5, 5, 2, "same", 0, True),
    (2, 2, 4, 4, 2, 2, 2, 2, "same", 0, True),
    (1, 2, 3, 4, 2, 2, 2, 3, "same", 0, True),
    (2, 2, 4, 4, 2, 3, 3, 2, "valid", 0, True),
    (2, 3, 6, 5, 2, 4, 3, 2, (1, 0, 2, 1), 1, True),
    (1, 1, 3, 3, 1, 1, 1, 1, 0, 0, True),
    (4, 16, 7, 7, 8, 5, 5, 1, "same", 0, False),
    (4, 8, 7, 7, 4, 5, 5, 2, "same", 0, False),
]


def deconv_id(c):
    N, Ci, H, W, Co, FH, FW, s, p, op, b = c
    return f"x{N}x{Ci}x{H}x{W}-W{Co}x{FH}x{FW}-s{s}-p{p}-op{op}" + ("" if b else "-nobias")


DECONV_IDS = [deconv_id(c) for c in DECONV_CASES]


def deconv_inputs(rng, case, dtype):
    N, Ci, H, W, Co, FH, FW, stride, pad, op, bias = case
    x = randn(rng, (N, Ci, H, W), dtype)
    Wt = randn(rng, (Ci, Co, FH, FW), dtype)
    b = randn(rng, (Co,), dtype) if bias else None
    return x, Wt, b, {"stride": stride, "pad": pad, "output_padding": op}


def deconv_reference(x, Wt, b, kw, dout):
    ref = ref_layers.Deconvolution(f64(Wt), None if b is None else f64(b), **kw)
    out = ref.forward(f64(x))
    dx = ref.backward(f64(dout))
    return out, dx, ref.dW, ref.db


@pytest.mark.parametrize("case", DECONV_CASES, ids=DECONV_IDS)
def test_deconv_ops(rng, device, isa, dtype, case):
    x, Wt, b, kw = deconv_inputs(rng, case, dtype)

    def dev(a):
        return to_device(a, device)

    y = to_host(ops.deconv_forward(dev(x), dev(Wt), dev(b), **kw))
    dout = randn(rng, y.shape, dtype)
    r_y, r_dx, r_dW, r_db = deconv_reference(x, Wt, b, kw, dout)
    assert y.dtype == dtype and y.shape == r_y.shape
    np.testing.assert_allclose(y, r_y, **TOL_DOT[dtype], err_msg=f"{isa} {case} y")
    dx, dW, db = map(to_host, ops.deconv_backward(dev(x), dev(Wt), dev(dout), **kw))
    for name, got, want in (("dx", dx, r_dx), ("dW", dW, r_dW)) + (
        (("db", db, r_db),) if b is not None else ()
    ):
        assert got.dtype == dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, **TOL_DOT[dtype], err_msg=f"{isa} {case} {name}")
    none, dW2, _ = ops.deconv_backward(dev(x), dev(Wt), dev(dout), need_dx=False, **kw)
    assert none is None
    np.testing.assert_array_equal(to_host(dW2), dW)


@pytest.mark.parametrize("case", DECONV_CASES, ids=DECONV_IDS)
def test_deconvolution_layer(rng, device, dtype, case):
    x, Wt, b, kw = deconv_inputs(rng, case, dtype)
    layer = layers.Deconvolution(to_device(Wt, device), to_device(b, device), **kw)
    y = to_host(layer.forward(to_device(x, device)))
    dout = randn(rng, y.shape, dtype)
    r_y, r_dx, r_dW, r_db = deconv_reference(x, Wt, b, kw, dout)
    np.testing.assert_allclose(y, r_y, **TOL_DOT[dtype], err_msg=f"{case} y")
    dx = to_host(layer.backward(to_device(dout, device)))
    np.testing.assert_allclose(dx, r_dx, **TOL_DOT[dtype], err_msg=f"{case} dx")
    np.testing.assert_allclose(to_host(layer.dW), r_dW, **TOL_DOT[dtype], err_msg=f"{case} dW")
    if b is None:
        assert layer.db is None
    else:
        np.testing.assert_allclose(to_host(layer.db), r_db, **TOL_DOT[dtype], err_msg=f"{case} db")


@pytest.mark.parametrize("H, FH, stride", [(7, 5, 1), (7, 5, 2), (4, 2, 2), (3, 2, 3), (5, 3, 2), (6, 4, 2)])
def test_deconv_same_is_keras(H, FH, stride):
    """pad="same": output H*stride (Keras' Conv2DTranspose), the adjoint of the 'same' convolution of that
    output: <deconv(x), y> == <x, conv_same(y)> for the same filters."""
    rng = np.random.default_rng(0)
    x, Wt = rng.standard_normal((1, 2, H, H)), rng.standard_normal((2, 3, FH, FH))
    y = ops.deconv_forward(x, Wt, None, stride, "same")
    assert y.shape == (1, 3, H * stride, H * stride)
    z = rng.standard_normal(y.shape)
    conv = ops.conv_forward(
        z, Wt, None, stride, "same"
    )  # W (C_in, C_out, ..) is the convolution's (FN, C, ..)
    assert conv.shape == x.shape
    np.testing.assert_allclose(np.sum(y * z), np.sum(x * conv), rtol=1e-12)


@pytest.mark.parametrize(
    "case",
    [c for c in DECONV_CASES if not isinstance(c[8], str)],
    ids=[deconv_id(c) for c in DECONV_CASES if not isinstance(c[8], str)],
)
def test_deconv_against_torch(rng, case):
    torch = pytest.importorskip("torch")
    x, Wt, b, kw = deconv_inputs(rng, case, np.float64)
    y = ops.deconv_forward(x, Wt, b, **kw)
    pad = kw["pad"]
    pt, pb, pl, pr = (pad,) * 4 if isinstance(pad, int) else pad
    # torch pads symmetrically: take the smaller pad per axis there and crop the rest here
    mh, mw = min(pt, pb), min(pl, pr)
    want = torch.nn.functional.conv_transpose2d(
        torch.tensor(x),
        torch.tensor(Wt),
        None if b is None else torch.tensor(b),
        stride=kw["stride"],
        padding=(mh, mw),
        output_padding=kw["output_padding"],
    ).numpy()
    want = want[:, :, pt - mh : pt - mh + y.shape[2], pl - mw : pl - mw + y.shape[3]]
    np.testing.assert_allclose(y, want, **TOL_DOT[np.float64])


@pytest.mark.parametrize(
    "case", [DECONV_CASES[i] for i in (2, 4, 5, 9)], ids=[DECONV_IDS[i] for i in (2, 4, 5, 9)]
)
def test_deconvolution_numerical_gradient(rng, case):
    x, Wt, b, kw = deconv_inputs(rng, case, np.float64)
    layer = layers.Deconvolution(Wt, b, **kw)
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)

    def loss(_):
        return float(np.sum(layer.forward(x) * dout))

    for name, got, arr in (("dx", dx, x), ("dW", layer.dW, Wt)) + (
        (("db", layer.db, b),) if b is not None else ()
    ):
        np.testing.assert_allclose(got, numerical_gradient(loss, arr), rtol=1e-5, atol=1e-7, err_msg=name)


X = np.zeros((2, 3, 4, 4))
W = np.zeros((3, 2, 3, 3))

BAD = [
    (
        "output_padding >= stride",
        lambda: ops.deconv_forward(X, W, None, 2, 1, 2),
        ValueError,
        r"^output_padding must be smaller than stride \(2, 2\), got \(2, 2\)",
    ),
    (
        "output_padding stride 1",
        lambda: ops.deconv_forward(X, W, None, 1, 0, (0, 1)),
        ValueError,
        r"^output_padding must be smaller than stride \(1, 1\), got \(0, 1\)",
    ),
    (
        "output_padding negative",
        lambda: ops.deconv_forward(X, W, None, 2, 0, -1),
        ValueError,
        r"^output_padding must be >= 0, got -1",
    ),
    (
        "output_padding with same",
        lambda: ops.deconv_forward(X, W, None, 2, "same", 1),
        ValueError,
        r"^output_padding: must be 0 with pad='same'",
    ),
    (
        "channels",
        lambda: ops.deconv_forward(X, np.zeros((2, 2, 3, 3)), None),
        ValueError,
        r"^W: shape \(2, 2, 3, 3\) expects 2 input channels, but x: shape \(2, 3, 4, 4\) has 3",
    ),
    (
        "pad eats the output",
        lambda: ops.deconv_forward(X, W, None, 1, 3),
        ValueError,
        r"^pad: 3 leaves an empty output 0x0",
    ),
    ("pad string", lambda: ops.deconv_forward(X, W, None, 1, "full"), ValueError, r"^pad: expected"),
    ("stride 0", lambda: ops.deconv_forward(X, W, None, 0), ValueError, r"^stride must be >= 1, got 0"),
    (
        "b shape",
        lambda: ops.deconv_forward(X, W, np.zeros(3)),
        ValueError,
        r"^b: shape \(3,\), expected \(2,\)",
    ),
    (
        "dy shape",
        lambda: ops.deconv_backward(X, W, np.zeros((2, 2, 5, 5))),
        ValueError,
        r"^dy: shape \(2, 2, 5, 5\), expected \(2, 2, 6, 6\)",
    ),
    ("x 3-D", lambda: ops.deconv_forward(X[0], W, None), ValueError, r"^x: expected a 4-D"),
]


@pytest.mark.parametrize("name, call, exc, pattern", BAD, ids=[b[0] for b in BAD])
def test_deconv_bad_input(name, call, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_deconv_kernel_checks_output_shape():
    """The binding's geometry check: an output whose convolution does not give back x's size is refused."""
    from fastconv import _cpu

    with pytest.raises(ValueError, match=r"^y: 9x9 output does not belong to an input of 4x4"):
        _cpu.deconv_forward_f64(X, W, None, np.zeros((2, 2, 9, 9)), (1, 1), (0, 0, 0, 0))


def test_reference_deconvolution_numerical_gradient(rng):
    x, Wt, b, kw = deconv_inputs(rng, DECONV_CASES[9], np.float64)
    ref = ref_layers.Deconvolution(Wt, b, **kw)
    dout = rng.standard_normal(ref.forward(x).shape)
    dx = ref.backward(dout)

    def loss(_):
        return float(np.sum(ref.forward(x) * dout))

    for got, arr in ((dx, x), (ref.dW, Wt), (ref.db, b)):
        np.testing.assert_allclose(got, numerical_gradient(loss, arr), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("stride", [2, 3])
def test_deconv_same_bits_on_any_thread_count(rng, isa, num_threads, dtype, stride):
    """The strided transposed convolution's forward runs its GEMM on groups of images whose size follows the
    thread count (13 images of 5x5: 11, 7 and 5 per group on 1, 2 and 3 threads); every output is the same sum
    whatever the grouping, so the bits agree."""
    x = randn(rng, (13, 6, 5, 5), dtype)
    Wt = randn(rng, (6, 4, 3, 3), dtype)
    b = randn(rng, (4,), dtype)
    dout = randn(rng, ops.deconv_forward(x, Wt, b, stride, 1).shape, dtype)
    results = []
    for n in (1, 2, 3):
        num_threads(n)
        results.append([ops.deconv_forward(x, Wt, b, stride, 1), *ops.deconv_backward(x, Wt, dout, stride, 1)])
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c, err_msg=f"{isa} stride {stride}")
