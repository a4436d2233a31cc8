"""Convolution: fastconv.ops.conv_forward / conv_backward and layers.Convolution against
fastconv.reference.layers.Convolution (float64 oracle), for every GEMM micro-kernel ISA."""

import numpy as np
import pytest
from conftest import CONV_CASES, CONV_IDS, TOL_DOT, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import layers as ref_layers


def conv_inputs(rng, case, dtype):
    N, C, H, W, FN, FH, FW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    Wt = randn(rng, (FN, C, FH, FW), dtype)
    b = randn(rng, (FN,), dtype)
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (W + 2 * pad - FW) // stride + 1
    dout = randn(rng, (N, FN, OH, OW), dtype)
    return x, Wt, b, dout, stride, pad


def reference(x, Wt, b, dout, stride, pad):
    ref = ref_layers.Convolution(*f64(Wt, b), stride, pad)
    out = ref.forward(f64(x))
    dx = ref.backward(f64(dout))
    return out, dx, ref.dW, ref.db


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_ops(rng, device, isa, dtype, case):
    x, Wt, b, dout, stride, pad = conv_inputs(rng, case, dtype)
    r_out, r_dx, r_dW, r_db = reference(x, Wt, b, dout, stride, pad)
    xd, Wd, bd, doutd = (to_device(a, device) for a in (x, Wt, b, dout))
    out = to_host(ops.conv_forward(xd, Wd, bd, stride, pad))
    assert out.dtype == dtype and out.shape == r_out.shape
    np.testing.assert_allclose(out, r_out, **TOL_DOT[dtype], err_msg=f"{isa} {case} out")
    dx, dW, db = map(to_host, ops.conv_backward(xd, Wd, doutd, stride, pad))
    for name, got, want in (("dx", dx, r_dx), ("dW", dW, r_dW), ("db", db, r_db)):
        assert got.dtype == dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, **TOL_DOT[dtype], err_msg=f"{isa} {case} {name}")


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_convolution_layer(rng, device, isa, dtype, case):
    x, Wt, b, dout, stride, pad = conv_inputs(rng, case, dtype)
    r_out, r_dx, r_dW, r_db = reference(x, Wt, b, dout, stride, pad)
    layer = layers.Convolution(to_device(Wt, device), to_device(b, device), stride=stride, pad=pad)
    out = to_host(layer.forward(to_device(x, device)))
    np.testing.assert_allclose(out, r_out, **TOL_DOT[dtype], err_msg=f"{isa} {case} out")
    dx = to_host(layer.backward(to_device(dout, device)))
    dW, db = to_host(layer.dW), to_host(layer.db)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert dW.shape == Wt.shape and db.shape == b.shape
    np.testing.assert_allclose(dx, r_dx, **TOL_DOT[dtype], err_msg=f"{isa} {case} dx")
    np.testing.assert_allclose(dW, r_dW, **TOL_DOT[dtype], err_msg=f"{isa} {case} dW")
    np.testing.assert_allclose(db, r_db, **TOL_DOT[dtype], err_msg=f"{isa} {case} db")


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_forward_relu_is_relu_of_conv_bit_for_bit(rng, device, isa, dtype, case):
    """relu=True fuses relu_forward into the kernel's write-back: the same bits as the two calls, NaN and
    inf included (NaN passes, -0.0 and negatives become +0.0), on both paths (the gather tiles and the grouped
    im2col of 1x1 filters)."""
    x, Wt, b, _, stride, pad = conv_inputs(rng, case, dtype)
    x.flat[0], x.flat[x.size // 2], x.flat[-1] = np.nan, -np.inf, np.inf
    b[::2] = -0.0
    x, Wt, b = (to_device(a, device) for a in (x, Wt, b))
    want = to_host(ops.relu_forward(ops.conv_forward(x, Wt, b, stride, pad)))
    got = to_host(ops.conv_forward(x, Wt, b, stride, pad, relu=True))
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{isa} {case}")
    assert (got > 0).any() and (got == 0).any(), "the case must exercise both sides of the ReLU"


def test_convolution_forward_relu_leaves_both_layers_as_their_forwards(rng, device):
    x, Wt, b, dout, stride, pad = conv_inputs(rng, (3, 3, 7, 9, 4, 3, 3, 1, 1), np.float32)
    x, Wt, b, dout = (to_device(a, device) for a in (x, Wt, b, dout))
    conv, relu = layers.Convolution(Wt, b, stride, pad), layers.Relu()
    conv2, relu2 = layers.Convolution(Wt, b, stride, pad), layers.Relu()
    fused = conv.forward_relu(x, relu)
    plain = relu2.forward(conv2.forward(x))
    np.testing.assert_array_equal(to_host(fused), to_host(plain))
    assert relu.out is fused and conv.x is x
    np.testing.assert_array_equal(to_host(relu.mask), to_host(relu2.mask))
    dx = conv.backward(relu.backward(dout))
    dx2 = conv2.backward(relu2.backward(dout))
    for got, want in ((dx, dx2), (conv.dW, conv2.dW), (conv.db, conv2.db)):
        np.testing.assert_array_equal(to_host(got), to_host(want))


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_backward_without_dx_same_dw_db(rng, device, isa, dtype, case):
    """need_dx=False (a network's first layer) skips the input gradient on every path (stride-1 forward
    convolution of dout, col2im, im2col) and leaves dW and db bit for bit as with it."""
    x, Wt, b, dout, stride, pad = conv_inputs(rng, case, dtype)
    x, Wt, b, dout = (to_device(a, device) for a in (x, Wt, b, dout))
    _, dW, db = map(to_host, ops.conv_backward(x, Wt, dout, stride, pad))
    none, dW2, db2 = ops.conv_backward(x, Wt, dout, stride, pad, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(_bits(to_host(dW2)), _bits(dW), err_msg=f"{isa} {case} dW")
    np.testing.assert_array_equal(_bits(to_host(db2)), _bits(db), err_msg=f"{isa} {case} db")
    layer, full = layers.Convolution(Wt, b, stride, pad), layers.Convolution(Wt, b, stride, pad)
    layer.forward(x)
    full.forward(x)
    assert layer.backward_params(dout) is None
    full.backward(dout)
    np.testing.assert_array_equal(to_host(layer.dW), to_host(full.dW))
    np.testing.assert_array_equal(to_host(layer.db), to_host(full.db))


def test_convolution_reads_params_every_call(rng, device):
    """Optimizers update W in place and load_params rebinds it: the layer must not cache either."""
    x, Wt, b, dout, stride, pad = conv_inputs(rng, (2, 3, 7, 7, 4, 3, 3, 1, 1), np.float64)
    xd, Wd, bd = (to_device(a, device) for a in (x, Wt, b))
    layer = layers.Convolution(Wd, bd, stride, pad)
    layer.forward(xd)
    Wd *= 2.0  # in place
    Wt = to_host(Wd)
    np.testing.assert_allclose(
        to_host(layer.forward(xd)), reference(x, Wt, b, dout, stride, pad)[0], rtol=1e-10, atol=1e-12
    )
    layer.W = -Wd  # rebind
    layer.b = bd + 1.0
    np.testing.assert_allclose(
        to_host(layer.forward(xd)), reference(x, -Wt, b + 1.0, dout, stride, pad)[0], rtol=1e-10, atol=1e-12
    )


def test_conv_mixed_dtypes_promote(rng, device):
    x, Wt, b, dout, stride, pad = conv_inputs(rng, (2, 3, 6, 6, 4, 3, 3, 1, 1), np.float32)
    out = to_host(ops.conv_forward(*(to_device(a, device) for a in (x, f64(Wt), b)), stride, pad))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference(x, Wt, b, dout, stride, pad)[0], **TOL_DOT[np.float64])


def test_conv_known_values(device):
    """A hand-checked case: 3x3 all-ones filter over arange(16) with pad 1 sums each 3x3 neighbourhood."""
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    args = (to_device(a, device) for a in (x, np.ones((1, 1, 3, 3)), np.array([0.5])))
    out = to_host(ops.conv_forward(*args, 1, 1))
    xp = np.pad(x[0, 0], 1)
    want = np.array([[xp[i : i + 3, j : j + 3].sum() for j in range(4)] for i in range(4)]) + 0.5
    np.testing.assert_array_equal(out[0, 0], want)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["right_border", "interior"])
def test_conv_nonfinite_inputs_propagate_like_reference(rng, device, isa, value, where):
    """inf / NaN in x propagate exactly as in the reference: every product the stride-1 gather tiles compute
    must be one of im2col's GEMM (no padding row or column of a tile may feed a kept result), so a value
    bordering the padded frame or inside it reaches exactly the taps and outputs that see it."""
    x = randn(rng, (3, 2, 7, 9), np.float64)
    Wt = randn(rng, (4, 2, 3, 3), np.float64)
    b = randn(rng, (4,), np.float64)
    col = 8 if where == "right_border" else 4
    x[1, 0, 3, col] = value
    xd, Wd = to_device(x, device), to_device(Wt, device)
    out = to_host(ops.conv_forward(xd, Wd, to_device(b, device), 1, 1))
    dout = randn(rng, out.shape, np.float64)
    r_out, r_dx, r_dW, r_db = reference(x, Wt, b, dout, 1, 1)
    dx, dW, db = map(to_host, ops.conv_backward(xd, Wd, to_device(dout, device), 1, 1))
    for name, got, want in (("out", out, r_out), ("dx", dx, r_dx), ("dW", dW, r_dW), ("db", db, r_db)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{isa} {where} {name} NaN pattern")
        np.testing.assert_allclose(got, want, **TOL_DOT[np.float64], equal_nan=True, err_msg=f"{isa} {where} {name}")


# ======================================================================================================
# memory: the convolution never holds the column matrix (the CPU kernels' scratch accounting: CPU only)


def test_conv_memory_below_half_column_matrix():
    """DeepConvNet conv2 at batch 100 (float32): NumPy buffers (tracemalloc) plus the kernels' own scratch
    (workspace accounting) of one forward + backward stay below half the 45 MB column matrix. Measured in
    a fresh process (bench/bench_memory.py --json) so the per-thread arenas start empty."""
    import json
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "bench_memory.py")
    res = subprocess.run([sys.executable, script, "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["col_bytes"] == 100 * 28 * 28 * 16 * 9 * 4
    assert r["scratch_peak"] > 0  # the accounting sees the kernels' buffers
    assert r["numpy_peak"] >= 2 * 100 * 16 * 28 * 28 * 4  # out and dx at least
    assert r["total"] < r["col_bytes"] / 2, r


def test_workspace_accounting_counts_and_resets(rng):
    """workspace_bytes(): peak >= current, a conv call registers its scratch, reset_workspace_peak() restarts."""
    from fastconv import _cpu

    x = randn(rng, (4, 8, 40, 40), np.float32)
    Wt = randn(rng, (8, 8, 3, 3), np.float32)
    ops.conv_forward(x, Wt, np.zeros(8, np.float32), 1, 1)
    _cpu.reset_workspace_peak()
    w = _cpu.workspace_bytes()
    assert w["peak"] == w["current"] > 0
    # a larger image than any before grows the arenas: the peak follows
    big = randn(rng, (2, 8, 300, 300), np.float32)
    ops.conv_forward(big, Wt, np.zeros(8, np.float32), 1, 1)
    w2 = _cpu.workspace_bytes()
    assert w2["peak"] >= w2["current"] >= w["current"]
    assert w2["peak"] >= 8 * 302 * 302 * 4  # one padded image is held at least
