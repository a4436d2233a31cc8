"""Max and average pooling: layers.Pooling / AvgPooling and ops.*pool_* against fastconv.reference.layers."""

import numpy as np
import pytest
from conftest import POOL_CASES, POOL_IDS, TOL, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import layers as ref_layers


def out_hw(H, W, PH, PW, stride, pad):
    return (H + 2 * pad - PH) // stride + 1, (W + 2 * pad - PW) // stride + 1


def ref_argmax_plane(ref, x_shape, case):
    """The reference's window-local argmax (rows (n, oh, ow, c)) as fastconv's plane index ih*W + iw."""
    N, C, H, W, PH, PW, stride, pad = case
    OH, OW = out_hw(H, W, PH, PW, stride, pad)
    k = ref.arg_max.reshape(N, OH, OW, C).transpose(0, 3, 1, 2)
    oh = np.arange(OH).reshape(1, 1, OH, 1)
    ow = np.arange(OW).reshape(1, 1, 1, OW)
    ih = oh * stride - pad + k // PW
    iw = ow * stride - pad + k % PW
    return ih * W + iw


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool(rng, device, dtype, threads, case):
    N, C, H, W, PH, PW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    dout = randn(rng, (N, C, *out_hw(H, W, PH, PW, stride, pad)), dtype)
    ref = ref_layers.Pooling(PH, PW, stride, pad)
    r_out = ref.forward(f64(x))
    r_dx = ref.backward(f64(dout))
    layer = layers.Pooling(PH, PW, stride=stride, pad=pad)
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, r_out, err_msg=f"t{threads} {case}")  # a max is exact
    np.testing.assert_array_equal(to_host(layer.arg_max), ref_argmax_plane(ref, x.shape, case), err_msg=f"{case}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"t{threads} {case}")


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_inference_keeps_no_argmax(rng, device, dtype, threads, case):
    """train_flg=False (the networks' predict): the same output, no argmax kept, and backward refuses until a
    training forward has run again."""
    N, C, H, W, PH, PW, stride, pad = case
    x = to_device(randn(rng, (N, C, H, W), dtype), device)
    layer = layers.Pooling(PH, PW, stride=stride, pad=pad)
    want = to_host(layer.forward(x))
    got = to_host(layer.forward(x, train_flg=False))
    np.testing.assert_array_equal(got, want, err_msg=f"t{threads} {case}")
    assert layer.arg_max is None
    dout = to_device(np.ones(want.shape, dtype), device)
    with pytest.raises(RuntimeError, match="train_flg=False"):
        layer.backward(dout)
    layer.forward(x, train_flg=True)
    assert to_host(layer.backward(dout)).shape == x.shape
    out, argmax = ops.maxpool_forward(x, PH, PW, stride, pad, keep_argmax=False)
    assert argmax is None
    np.testing.assert_array_equal(to_host(out), want)


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avgpool(rng, device, dtype, threads, case):
    N, C, H, W, PH, PW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    dout = randn(rng, (N, C, *out_hw(H, W, PH, PW, stride, pad)), dtype)
    ref = ref_layers.AvgPooling(PH, PW, stride, pad)
    r_out = ref.forward(f64(x))
    r_dx = ref.backward(f64(dout))
    layer = layers.AvgPooling(PH, PW, stride=stride, pad=pad)
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == r_out.shape
    np.testing.assert_allclose(out, r_out, **TOL[dtype], err_msg=f"t{threads} {case}")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, r_dx, **TOL[dtype], err_msg=f"t{threads} {case}")


@pytest.mark.parametrize(
    "case", [c for c in POOL_CASES if c[7] > 0], ids=[i for c, i in zip(POOL_CASES, POOL_IDS) if c[7] > 0]
)
def test_maxpool_padding_never_wins(rng, device, dtype, case):
    """All-negative input: a zero from the padding must never be the maximum, nor receive gradient."""
    N, C, H, W, PH, PW, stride, pad = case
    x = -1.0 - np.abs(randn(rng, (N, C, H, W), dtype))
    out, argmax = map(to_host, ops.maxpool_forward(to_device(x, device), PH, PW, stride, pad))
    assert (out < 0).all(), f"{case}: padding value won"
    assert ((argmax >= 0) & (argmax < H * W)).all()
    ref = ref_layers.Pooling(PH, PW, stride, pad)
    np.testing.assert_array_equal(out, ref.forward(f64(x)))
    dout = np.ones_like(out)
    dx = to_host(ops.maxpool_backward(to_device(dout, device), to_device(argmax, device), x.shape, PH, PW, stride,
                                      pad))
    np.testing.assert_allclose(dx, ref.backward(f64(dout)), **TOL[dtype])
    assert dx.sum() == out.size  # every window routes its gradient to a real pixel


@pytest.mark.parametrize(
    "case", [c for c in POOL_CASES if c[7] > 0], ids=[i for c, i in zip(POOL_CASES, POOL_IDS) if c[7] > 0]
)
def test_avgpool_padding_counts_as_zero(rng, device, dtype, case):
    """All-negative input: padded windows divide by pool_h*pool_w (count_include_pad), like the reference."""
    N, C, H, W, PH, PW, stride, pad = case
    x = -1.0 - np.abs(randn(rng, (N, C, H, W), dtype))
    out = to_host(ops.avgpool_forward(to_device(x, device), PH, PW, stride, pad))
    np.testing.assert_allclose(out, ref_layers.AvgPooling(PH, PW, stride, pad).forward(f64(x)), **TOL[dtype])


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_ties_take_first(rng, device, dtype, case):
    """Many ties (few distinct values): argmax is the first maximum in row-major window order."""
    N, C, H, W, PH, PW, stride, pad = case
    x = rng.integers(-2, 2, size=(N, C, H, W)).astype(dtype)
    x[0, 0] = 1.0  # a constant plane: every window is one big tie
    layer = layers.Pooling(PH, PW, stride, pad)
    out = to_host(layer.forward(to_device(x, device)))
    ref = ref_layers.Pooling(PH, PW, stride, pad)
    np.testing.assert_array_equal(out, ref.forward(f64(x)))
    np.testing.assert_array_equal(to_host(layer.arg_max), ref_argmax_plane(ref, x.shape, case), err_msg=f"{case}")
    dout = randn(rng, out.shape, dtype)
    np.testing.assert_allclose(to_host(layer.backward(to_device(dout, device))), ref.backward(f64(dout)), **TOL[dtype],
                               err_msg=f"{case}")


def test_maxpool_nan_propagates(device):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out = to_host(ops.maxpool_forward(to_device(x, device), 2, 2, 2, 0)[0])
    assert np.isnan(out[0, 0, 0, 0])
    assert not np.isnan(out[0, 0, 1:, :]).any() and not np.isnan(out[0, 0, :, 1:]).any()


def test_maxpool_book_example(device):
    """2x2 / stride 2 on a known 4x4 plane."""
    x = np.array([[1, 2, 0, 1], [3, 0, 5, 2], [0, 0, 1, 1], [4, 1, 0, 7]], dtype=np.float32).reshape(
        1, 1, 4, 4
    )
    out, argmax = map(to_host, ops.maxpool_forward(to_device(x, device), 2, 2, 2, 0))
    np.testing.assert_array_equal(out[0, 0], [[3, 5], [4, 7]])
    np.testing.assert_array_equal(argmax[0, 0], [[4, 6], [12, 15]])
    assert argmax.dtype == np.int32


def test_pooling_layer_shape_with_pad(device):
    """The book's Pooling ignores pad in out_h; fastconv (like its reference) counts it."""
    x = to_device(np.ones((1, 1, 5, 5)), device)
    assert layers.Pooling(3, 3, stride=2, pad=1).forward(x).shape == (1, 1, 3, 3)
    assert layers.AvgPooling(3, 3, stride=2, pad=1).forward(x).shape == (1, 1, 3, 3)
