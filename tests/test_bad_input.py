"""Argument validation of the public API (ops, layers, util, functions) and of the raw fastconv._cpu bindings.

Every bad argument raises TypeError (wrong kind / dtype) or ValueError (wrong shape / value) with a message
naming the argument; odd memory layouts (non-contiguous, sliced, Fortran, read-only) give the same results as
contiguous arrays.
"""

import contextlib
import re

import numpy as np
import pytest
from fastconv import _cpu, functions, layers, ops, util

F32 = np.float32


def z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


X = z(2, 3, 5, 5)
W = z(4, 3, 3, 3)
B = z(4)
DOUT = z(2, 4, 3, 3)


# ======================================================================================================
# dtypes

BAD_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.complex128, np.float16, object]
BAD_DTYPE_IDS = ["int64", "int32", "uint8", "bool", "complex128", "float16", "object"]

# (callable taking the array under test, the argument name expected in the message)
DTYPE_SITES = {
    "gemm.a": (lambda a: ops.gemm(a, z(5, 5)), "a"),
    "gemm.b": (lambda a: ops.gemm(z(5, 5), a), "b"),
    "im2col": (lambda a: util.im2col(a.reshape(1, 1, 5, 5), 3, 3), "input_data"),
    "col2im": (lambda a: util.col2im(a.reshape(1, 25)[:, :9], (1, 1, 3, 3), 3, 3), "col"),
    "conv.x": (lambda a: ops.conv_forward(np.resize(a, (1, 3, 5, 5)), W, B), "x"),
    "conv.W": (lambda a: ops.conv_forward(X, np.resize(a, (4, 3, 3, 3)), B), "W"),
    "conv.b": (lambda a: ops.conv_forward(X, W, np.resize(a, 4)), "b"),
    "conv_backward.dout": (lambda a: ops.conv_backward(X, W, np.resize(a, DOUT.shape)), "dout"),
    "Convolution": (lambda a: layers.Convolution(W, B).forward(np.resize(a, (1, 3, 5, 5))), "x"),
    "Pooling": (lambda a: layers.Pooling(2, 2).forward(a.reshape(1, 1, 5, 5)), "x"),
    "AvgPooling": (lambda a: layers.AvgPooling(2, 2).forward(a.reshape(1, 1, 5, 5)), "x"),
    "relu": (lambda a: functions.relu(a), "x"),
    "Relu": (lambda a: layers.Relu().forward(a), "x"),
    "sigmoid": (lambda a: functions.sigmoid(a), "x"),
    "Affine.x": (lambda a: layers.Affine(z(25, 2), z(2)).forward(a.reshape(1, 25)), "x"),
    "Affine.W": (lambda a: layers.Affine(a.reshape(25, 1), z(1)).forward(z(1, 25)), "W"),
    "softmax": (lambda a: functions.softmax(a.reshape(5, 5)), "x"),
    "SoftmaxWithLoss.x": (lambda a: layers.SoftmaxWithLoss().forward(a.reshape(5, 5), np.zeros(5, int)), "x"),
    "Dropout": (lambda a: layers.Dropout().forward(a), "x"),
    "Dropout.infer": (lambda a: layers.Dropout().forward(a, train_flg=False), "x"),
    "BatchNormalization.x": (
        lambda a: layers.BatchNormalization(np.ones(5), z(5)).forward(a.reshape(5, 5)),
        "x",
    ),
    "BatchNormalization.gamma": (lambda a: layers.BatchNormalization(a[:5], z(5)).forward(z(5, 5)), "gamma"),
    "maxpool_backward.dout": (
        lambda a: ops.maxpool_backward(
            a.reshape(1, 1, 5, 5)[:, :, :2, :2], np.zeros((1, 1, 2, 2), np.int32), (1, 1, 4, 4), 2, 2
        ),
        "dout",
    ),
}


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=BAD_DTYPE_IDS)
@pytest.mark.parametrize("site", list(DTYPE_SITES), ids=list(DTYPE_SITES))
def test_bad_dtype(site, bad):
    f, name = DTYPE_SITES[site]
    a = np.arange(25).astype(bad)
    if bad is np.float16 and site in HALF_SITES:
        # these ops have float16 kernels (tests/test_half.py): the dtype is accepted (gemm then refuses the
        # 1-D array's shape)
        with contextlib.suppress(ValueError):
            f(a)
        return
    with pytest.raises(TypeError, match=rf"^{name}: dtype"):
        f(a)


# The sites of DTYPE_SITES whose ops have float16 / bfloat16 kernels.
HALF_SITES = {"gemm.a", "gemm.b", "relu", "Relu", "sigmoid", "Affine.x", "Affine.W", "conv.x", "conv.W", "conv.b",
              "conv_backward.dout", "Convolution", "Pooling", "AvgPooling", "softmax", "SoftmaxWithLoss.x", "Dropout",
              "Dropout.infer", "maxpool_backward.dout", "im2col", "col2im", "BatchNormalization.x",
              "BatchNormalization.gamma"}


def test_dtype_hints():
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        ops.relu_forward(np.arange(3))
    # the float64 statistics an op hands back are not 16-bit operands, even where its data may be
    x = np.ones((2, 3, 2, 2), np.float16)
    g = np.ones(3, np.float16)
    with pytest.raises(TypeError, match=r"^mean: dtype float16 is not supported, expected float32 or float64; "
                                        r"mean is not a 16-bit operand, pass it as the op returned it$"):
        ops.spatial_batchnorm_backward(x, x, g, np.ones(3), g)


def test_none_and_ragged():
    with pytest.raises(TypeError, match="^x: expected an array, got None"):
        ops.relu_forward(None)
    with pytest.raises(TypeError, match="^x: cannot convert"):
        ops.relu_forward([[1.0, 2.0], [3.0]])


# ======================================================================================================
# shapes and scalar arguments

BAD_CALLS = [
    # gemm
    ("gemm 1-D a", lambda: ops.gemm(z(3), z(3, 2)), ValueError, r"^a: expected a 2-D"),
    ("gemm 3-D b", lambda: ops.gemm(z(2, 3), z(3, 2, 1)), ValueError, r"^b: expected a 2-D"),
    (
        "gemm K mismatch",
        lambda: ops.gemm(z(2, 3), z(4, 2)),
        ValueError,
        r"^b: shape \(4, 2\) does not match a",
    ),
    ("gemm K mismatch trans", lambda: ops.gemm(z(2, 3), z(4, 2), trans_a=True), ValueError, r"^b: shape"),
    ("gemm beta no out", lambda: ops.gemm(z(2, 3), z(3, 2), beta=1.0), ValueError, r"^out: beta != 0"),
    (
        "gemm out dtype",
        lambda: ops.gemm(z(2, 3), z(3, 2), out=z(2, 2, dtype=F32)),
        TypeError,
        r"^out: dtype float32",
    ),
    ("gemm out shape", lambda: ops.gemm(z(2, 3), z(3, 2), out=z(2, 3)), ValueError, r"^out: shape \(2, 3\)"),
    (
        "gemm out F-order",
        lambda: ops.gemm(z(2, 3), z(3, 2), out=np.asfortranarray(z(2, 2))),
        ValueError,
        r"^out: must be a writeable C-contiguous",
    ),
    ("gemm out list", lambda: ops.gemm(z(2, 3), z(3, 2), out=[[0.0, 0.0], [0.0, 0.0]]), TypeError, r"^out"),
    ("gemm alpha str", lambda: ops.gemm(z(2, 3), z(3, 2), alpha="1"), TypeError, r"^alpha"),
    ("gemm beta bool", lambda: ops.gemm(z(2, 3), z(3, 2), beta=True), TypeError, r"^beta"),
    # im2col / col2im
    ("im2col 3-D", lambda: util.im2col(z(3, 5, 5), 3, 3), ValueError, r"^input_data: expected a 4-D"),
    ("im2col N=0", lambda: util.im2col(z(0, 3, 5, 5), 3, 3), ValueError, r"^input_data: empty"),
    ("im2col C=0", lambda: util.im2col(z(2, 0, 5, 5), 3, 3), ValueError, r"^input_data: empty"),
    (
        "im2col filter too big",
        lambda: util.im2col(X, 6, 3),
        ValueError,
        r"^filter 6x3 is larger than the padded",
    ),
    ("im2col filter too big w/ pad", lambda: util.im2col(X, 3, 8, 1, 1), ValueError, r"padded input 7x7"),
    ("im2col filter_h 0", lambda: util.im2col(X, 0, 3), ValueError, r"^filter_h must be >= 1"),
    ("im2col filter_w -1", lambda: util.im2col(X, 3, -1), ValueError, r"^filter_w must be >= 1"),
    ("im2col stride 0", lambda: util.im2col(X, 3, 3, 0), ValueError, r"^stride must be >= 1, got 0"),
    ("im2col stride -2", lambda: util.im2col(X, 3, 3, -2), ValueError, r"^stride must be >= 1, got -2"),
    ("im2col pad -1", lambda: util.im2col(X, 3, 3, 1, -1), ValueError, r"^pad must be >= 0, got -1"),
    ("im2col stride float", lambda: util.im2col(X, 3, 3, 1.5), TypeError, r"^stride: expected an int"),
    ("im2col pad bool", lambda: util.im2col(X, 3, 3, 1, True), TypeError, r"^pad: expected an int, got bool"),
    ("im2col filter None", lambda: util.im2col(X, None, 3), TypeError, r"^filter_h"),
    (
        "im2col overflow",
        lambda: util.im2col(np.broadcast_to(F32(0), (2**20, 1, 2**20, 2**20)), 1, 1),
        ValueError,
        r"^input_data: the col array would have .* too large",
    ),
    (
        "col2im overflow",
        lambda: util.col2im(z(1, 9), (2**40, 2**40, 3, 3), 3, 3),
        ValueError,
        r"^input_shape: the x array would have .* too large",
    ),
    (
        "col2im 3 dims",
        lambda: util.col2im(z(1, 9), (1, 3, 3), 3, 3),
        ValueError,
        r"^input_shape: expected \(N, C",
    ),
    ("col2im shape int", lambda: util.col2im(z(1, 9), 5, 3, 3), TypeError, r"^input_shape"),
    (
        "col2im shape zero",
        lambda: util.col2im(z(1, 9), (0, 1, 3, 3), 3, 3),
        ValueError,
        r"^input_shape must be >= 1",
    ),
    ("col2im shape float", lambda: util.col2im(z(1, 9), (1, 1, 3.0, 3), 3, 3), TypeError, r"^input_shape"),
    (
        "col2im col shape",
        lambda: util.col2im(z(2, 9), (1, 1, 3, 3), 3, 3),
        ValueError,
        r"^col: shape \(2, 9\)",
    ),
    ("col2im col 1-D", lambda: util.col2im(z(9), (1, 1, 3, 3), 3, 3), ValueError, r"^col: expected a 2-D"),
    ("col2im stride 0", lambda: util.col2im(z(1, 9), (1, 1, 3, 3), 3, 3, 0), ValueError, r"^stride"),
    ("col2im filter too big", lambda: util.col2im(z(1, 16), (1, 1, 3, 3), 4, 4), ValueError, r"^filter 4x4"),
    # convolution
    ("conv x 3-D", lambda: ops.conv_forward(z(3, 5, 5), W, B), ValueError, r"^x: expected a 4-D"),
    ("conv W 2-D", lambda: ops.conv_forward(X, z(4, 27), B), ValueError, r"^W: expected a 4-D"),
    (
        "conv channels",
        lambda: ops.conv_forward(X, z(4, 2, 3, 3), B),
        ValueError,
        r"^W: shape \(4, 2, 3, 3\) expects 2 input channels, but x: shape \(2, 3, 5, 5\) has 3",
    ),
    ("conv b shape", lambda: ops.conv_forward(X, W, z(3)), ValueError, r"^b: shape \(3,\), expected \(4,\)"),
    ("conv b 2-D", lambda: ops.conv_forward(X, W, z(4, 1)), ValueError, r"^b: shape \(4, 1\)"),
    (
        "conv filter too big",
        lambda: ops.conv_forward(X, z(4, 3, 6, 6), B),
        ValueError,
        r"^filter 6x6 is larger",
    ),
    (
        "conv filter too big pad",
        lambda: ops.conv_forward(X, z(4, 3, 8, 3), B, 1, 1),
        ValueError,
        r"^filter 8x3",
    ),
    ("conv stride 0", lambda: ops.conv_forward(X, W, B, 0), ValueError, r"^stride must be >= 1"),
    ("conv stride -1", lambda: ops.conv_forward(X, W, B, -1), ValueError, r"^stride must be >= 1"),
    ("conv pad -1", lambda: ops.conv_forward(X, W, B, 1, -1), ValueError, r"^pad must be >= 0"),
    ("conv stride str", lambda: ops.conv_forward(X, W, B, "1"), TypeError, r"^stride: expected an int"),
    ("conv N=0", lambda: ops.conv_forward(z(0, 3, 5, 5), W, B), ValueError, r"^x: empty"),
    ("conv FN=0", lambda: ops.conv_forward(X, z(0, 3, 3, 3), z(0)), ValueError, r"^W: empty"),
    ("conv huge pad", lambda: ops.conv_forward(X, W, B, 1, 2**62), ValueError, r"too large"),
    (
        "conv_backward dout shape",
        lambda: ops.conv_backward(X, W, z(2, 4, 3, 4)),
        ValueError,
        r"^dout: shape \(2, 4, 3, 4\), expected \(2, 4, 3, 3\)",
    ),
    ("conv_backward dout 3-D", lambda: ops.conv_backward(X, W, z(4, 3, 3)), ValueError, r"^dout: shape"),
    ("conv_backward channels", lambda: ops.conv_backward(X, z(4, 2, 3, 3), DOUT), ValueError, r"^W: shape"),
    (
        "Convolution channels",
        lambda: layers.Convolution(z(4, 2, 3, 3), B).forward(X),
        ValueError,
        r"^W: shape .* input channels",
    ),
    ("Convolution N=0", lambda: layers.Convolution(W, B).forward(z(0, 3, 5, 5)), ValueError, r"^x: empty"),
    ("Convolution stride 0", lambda: layers.Convolution(W, B, stride=0).forward(X), ValueError, r"^stride"),
    # pooling
    ("maxpool 3-D", lambda: ops.maxpool_forward(z(3, 5, 5), 2, 2), ValueError, r"^x: expected a 4-D"),
    ("maxpool N=0", lambda: ops.maxpool_forward(z(0, 3, 5, 5), 2, 2), ValueError, r"^x: empty"),
    (
        "maxpool pad == window",
        lambda: ops.maxpool_forward(X, 2, 2, 2, 2),
        ValueError,
        r"^pad must be smaller than the pool window 2x2, got pad=2",
    ),
    (
        "maxpool pad > window w",
        lambda: ops.maxpool_forward(X, 3, 1, 1, 1),
        ValueError,
        r"^pad must be smaller",
    ),
    ("maxpool window too big", lambda: ops.maxpool_forward(X, 6, 6, 2, 0), ValueError, r"^pool window 6x6"),
    ("maxpool pool_h 0", lambda: ops.maxpool_forward(X, 0, 2), ValueError, r"^pool_h must be >= 1"),
    ("maxpool pool_w float", lambda: ops.maxpool_forward(X, 2, 2.0), TypeError, r"^pool_w: expected an int"),
    ("maxpool stride 0", lambda: ops.maxpool_forward(X, 2, 2, 0), ValueError, r"^stride must be >= 1"),
    ("maxpool pad -1", lambda: ops.maxpool_forward(X, 2, 2, 2, -1), ValueError, r"^pad must be >= 0"),
    (
        "avgpool pad == window",
        lambda: ops.avgpool_forward(X, 2, 2, 2, 2),
        ValueError,
        r"^pad must be smaller",
    ),
    ("avgpool N=0", lambda: ops.avgpool_forward(z(0, 3, 5, 5), 2, 2), ValueError, r"^x: empty"),
    ("Pooling pad", lambda: layers.Pooling(2, 2, pad=3).forward(X), ValueError, r"^pad must be smaller"),
    ("AvgPooling stride", lambda: layers.AvgPooling(2, 2, stride=-1).forward(X), ValueError, r"^stride"),
    (
        "maxpool_backward dout shape",
        lambda: ops.maxpool_backward(z(2, 3, 3, 3), np.zeros((2, 3, 3, 3), np.int32), X.shape, 2, 2),
        ValueError,
        r"^dout: shape \(2, 3, 3, 3\), expected \(2, 3, 2, 2\)",
    ),
    (
        "maxpool_backward argmax shape",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), np.zeros((2, 3, 2, 1), np.int32), X.shape, 2, 2),
        ValueError,
        r"^argmax: shape",
    ),
    (
        "maxpool_backward argmax float",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), z(2, 3, 2, 2), X.shape, 2, 2),
        TypeError,
        r"^argmax: expected an integer array",
    ),
    (
        "maxpool_backward argmax bool",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), np.zeros((2, 3, 2, 2), bool), X.shape, 2, 2),
        TypeError,
        r"^argmax",
    ),
    (
        "maxpool_backward argmax too big",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), np.full((2, 3, 2, 2), 25, np.int32), X.shape, 2, 2),
        ValueError,
        r"^argmax: value 25 at flat index 0 is out of range \[0, 25\)",
    ),
    (
        "maxpool_backward argmax negative",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), np.full((2, 3, 2, 2), -1), X.shape, 2, 2),
        ValueError,
        r"^argmax: value -1",
    ),
    (
        "maxpool_backward x_shape",
        lambda: ops.maxpool_backward(z(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int32), (2, 3, 5), 2, 2),
        ValueError,
        r"^x_shape",
    ),
    (
        "maxpool_backward dout 3-D",
        lambda: ops.maxpool_backward(z(3, 2, 2), np.zeros((3, 2, 2), np.int32), X.shape, 2, 2),
        ValueError,
        r"^dout: expected a 4-D",
    ),
    (
        "avgpool_backward dout shape",
        lambda: ops.avgpool_backward(z(2, 3, 3, 3), X.shape, 2, 2),
        ValueError,
        r"^dout: shape",
    ),
    (
        "Pooling.backward dout shape",
        lambda: _fwd_bwd(layers.Pooling(2, 2), X, z(2, 3, 3, 3)),
        ValueError,
        r"^dout: shape",
    ),
    (
        "AvgPooling.backward dout shape",
        lambda: _fwd_bwd(layers.AvgPooling(2, 2), X, z(2, 3, 2, 3)),
        ValueError,
        r"^dout: shape",
    ),
    # activations
    (
        "relu_backward shape",
        lambda: ops.relu_backward(z(3), z(4)),
        ValueError,
        r"^dout: shape \(3,\), expected",
    ),
    ("Relu.backward shape", lambda: _fwd_bwd(layers.Relu(), z(2, 3), z(3, 2)), ValueError, r"^dout: shape"),
    (
        "Sigmoid.backward shape",
        lambda: _fwd_bwd(layers.Sigmoid(), z(2, 3), z(2, 3, 1)),
        ValueError,
        r"^dout: shape",
    ),
    # affine
    (
        "affine x 3-D",
        lambda: ops.affine_forward(z(2, 3, 4), z(12, 5), z(5)),
        ValueError,
        r"^x: expected a 2-D",
    ),
    ("affine W 1-D", lambda: ops.affine_forward(z(2, 3), z(3), z(1)), ValueError, r"^W: expected a 2-D"),
    (
        "affine features",
        lambda: ops.affine_forward(z(2, 3), z(4, 5), z(5)),
        ValueError,
        r"^W: shape \(4, 5\) expects 4 input features, but x: shape \(2, 3\) has 3",
    ),
    (
        "affine b",
        lambda: ops.affine_forward(z(2, 4), z(4, 5), z(4)),
        ValueError,
        r"^b: shape \(4,\), expected \(5,\)",
    ),
    ("affine N=0", lambda: ops.affine_forward(z(0, 4), z(4, 5), z(5)), ValueError, r"^x: empty"),
    (
        "affine_backward dout",
        lambda: ops.affine_backward(z(2, 4), z(4, 5), z(2, 4)),
        ValueError,
        r"^dout: shape",
    ),
    (
        "Affine 4-D features",
        lambda: layers.Affine(z(4, 5), z(5)).forward(z(2, 3, 1, 1)),
        ValueError,
        r"^W: shape \(4, 5\) expects 4 input features",
    ),
    ("Affine 1-D x", lambda: layers.Affine(z(4, 5), z(5)).forward(z(4)), ValueError, r"^x: expected a batch"),
    (
        "Affine.backward dout",
        lambda: _fwd_bwd(layers.Affine(z(4, 5), z(5)), z(2, 4), z(2, 4)),
        ValueError,
        r"^dout: shape",
    ),
    # softmax / loss
    ("softmax 3-D", lambda: ops.softmax(z(2, 3, 4)), ValueError, r"^x: expected a 1-D \(K,\) or 2-D"),
    ("softmax 0-D", lambda: functions.softmax(np.float64(1.0)), ValueError, r"^x: expected a 1-D"),
    ("softmax empty", lambda: ops.softmax(z(0, 3)), ValueError, r"^x: empty"),
    (
        "loss label too big",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([0, 4, 1])),
        ValueError,
        r"^t: label 4 at index 1 is out of range \[0, 4\)",
    ),
    (
        "loss label negative",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([0, 1, -1])),
        ValueError,
        r"^t: label -1 at index 2",
    ),
    (
        "loss label uint64 huge",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([0, 2**63 + 1, 1], np.uint64)),
        ValueError,
        r"^t: label .* at index 1 is out of range",
    ),
    (
        "loss backward label",
        lambda: ops.softmax_cross_entropy_backward(z(3, 4), np.array([0, 9, 1])),
        ValueError,
        r"^t: label 9 at index 1",
    ),
    (
        "loss labels wrong length",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([0, 1])),
        ValueError,
        r"^t: shape \(2,\), expected \(3,\)",
    ),
    (
        "loss labels 2-D",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.zeros((3, 1), int)),
        ValueError,
        r"^t: shape",
    ),
    (
        "loss float labels",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([0.0, 1.0, 2.0])),
        TypeError,
        r"^t: float targets must have the shape of x",
    ),
    (
        "loss bool labels",
        lambda: ops.softmax_cross_entropy(z(3, 4), np.array([True, False, True])),
        TypeError,
        r"^t: labels must be integers",
    ),
    (
        "loss one-hot wrong shape",
        lambda: ops.softmax_cross_entropy(z(3, 4), z(3, 5)),
        TypeError,
        r"^t: float",
    ),
    (
        "loss x 3-D",
        lambda: ops.softmax_cross_entropy(z(3, 4, 1), np.zeros(3, int)),
        ValueError,
        r"^x: expected",
    ),
    (
        "loss dout str",
        lambda: ops.softmax_cross_entropy_backward(z(3, 4), np.zeros(3, int), "1"),
        TypeError,
        r"^dout",
    ),
    (
        "SoftmaxWithLoss label",
        lambda: layers.SoftmaxWithLoss().forward(z(2, 3), np.array([3, 0])),
        ValueError,
        r"^t: label 3 at index 0",
    ),
    (
        "SoftmaxWithLoss complex t",
        lambda: layers.SoftmaxWithLoss().forward(z(2, 3), z(2, 3).astype(complex)),
        TypeError,
        r"^t",
    ),
    # dropout
    (
        "dropout ratio 1",
        lambda: ops.dropout_forward(z(3), 1.0, 0),
        ValueError,
        r"^dropout_ratio must be in \[0, 1\)",
    ),
    ("dropout ratio -0.1", lambda: ops.dropout_forward(z(3), -0.1, 0), ValueError, r"^dropout_ratio"),
    ("dropout ratio nan", lambda: ops.dropout_forward(z(3), float("nan"), 0), ValueError, r"^dropout_ratio"),
    ("dropout ratio str", lambda: ops.dropout_forward(z(3), "0.5", 0), TypeError, r"^dropout_ratio"),
    ("dropout seed -1", lambda: ops.dropout_forward(z(3), 0.5, -1), ValueError, r"^seed must be >= 0"),
    (
        "dropout seed 2**64",
        lambda: ops.dropout_forward(z(3), 0.5, 2**64),
        ValueError,
        r"^seed must be < 2\*\*64",
    ),
    ("dropout seed float", lambda: ops.dropout_forward(z(3), 0.5, 1.0), TypeError, r"^seed"),
    ("dropout infer ratio", lambda: ops.dropout_infer(z(3), 1.5), ValueError, r"^dropout_ratio"),
    (
        "dropout mask dtype",
        lambda: ops.dropout_backward(z(3), np.ones(3, int)),
        TypeError,
        r"^mask: expected a bool",
    ),
    (
        "dropout mask shape",
        lambda: ops.dropout_backward(z(3), np.ones(4, bool)),
        ValueError,
        r"^mask: shape \(4,\), expected \(3,\)",
    ),
    ("Dropout.backward dout", lambda: _fwd_bwd(layers.Dropout(0.5), z(4), z(3)), ValueError, r"^mask: shape"),
    ("Dropout ratio 1", lambda: layers.Dropout(1.0).forward(z(3)), ValueError, r"^dropout_ratio"),
    # batch normalization
    (
        "bn x 3-D",
        lambda: ops.batchnorm_forward_train(z(3, 4, 1), np.ones(4), z(4), z(4), z(4)),
        ValueError,
        r"^x: expected a 2-D",
    ),
    (
        "bn x N=0",
        lambda: ops.batchnorm_forward_train(z(0, 4), np.ones(4), z(4), z(4), z(4)),
        ValueError,
        r"^x: empty",
    ),
    (
        "bn gamma size",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(3), z(4), z(4), z(4)),
        ValueError,
        r"^gamma: shape \(3,\) has 3 elements, expected 4",
    ),
    (
        "bn beta size",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(4), z(5), z(4), z(4)),
        ValueError,
        r"^beta",
    ),
    (
        "bn running_mean size",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(4), z(4), z(2), z(4)),
        ValueError,
        r"^running_mean",
    ),
    (
        "bn running_var int",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(4), z(4), z(4), np.zeros(4, int)),
        TypeError,
        r"^running_var: dtype",
    ),
    (
        "bn eps 0",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(4), z(4), z(4), z(4), 0.9, 0.0),
        ValueError,
        r"^eps must be > 0",
    ),
    (
        "bn momentum str",
        lambda: ops.batchnorm_forward_train(z(3, 4), np.ones(4), z(4), z(4), z(4), "0.9"),
        TypeError,
        r"^momentum",
    ),
    (
        "bn infer var size",
        lambda: ops.batchnorm_forward_infer(z(3, 4), np.ones(4), z(4), z(4), z(3)),
        ValueError,
        r"^running_var",
    ),
    (
        "bn backward xc",
        lambda: ops.batchnorm_backward(z(3, 4), z(3, 5), z(3, 4), np.ones(4), np.ones(4)),
        ValueError,
        r"^xc: shape \(3, 5\), expected \(3, 4\)",
    ),
    (
        "bn backward std",
        lambda: ops.batchnorm_backward(z(3, 4), z(3, 4), z(3, 4), np.ones(3), np.ones(4)),
        ValueError,
        r"^std",
    ),
    (
        "BatchNormalization 1-D",
        lambda: layers.BatchNormalization(np.ones(4), z(4)).forward(z(4)),
        ValueError,
        r"^x: expected a batch",
    ),
    (
        "BatchNormalization gamma",
        lambda: layers.BatchNormalization(np.ones(3), z(3)).forward(z(2, 4)),
        ValueError,
        r"^gamma",
    ),
    (
        "BatchNormalization.backward dout",
        lambda: _fwd_bwd(layers.BatchNormalization(np.ones(4), z(4)), z(3, 4), z(3, 5)),
        ValueError,
        r"dout",
    ),
]


def _fwd_bwd(layer, x, dout):
    layer.forward(x)
    return layer.backward(dout)


@pytest.mark.parametrize("f,exc,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_call(f, exc, match):
    with pytest.raises(exc, match=match):
        f()


# Layers flatten with x.reshape(N, -1), which NumPy cannot do for N == 0: the resulting error must still name
# the argument, as every other validation message does.
@pytest.mark.parametrize(
    "layer",
    [
        lambda: layers.Affine(z(4, 5), z(5)),
        lambda: layers.BatchNormalization(np.ones(4), z(4)),
    ],
    ids=["Affine", "BatchNormalization"],
)
def test_layer_empty_batch_names_x(layer):
    with pytest.raises(ValueError, match=r"^x: "):
        layer().forward(z(0, 4))


def test_argmax_out_of_int32_range_rejected():
    """argmax values that do not fit int32 must be rejected, not wrapped round to a valid index."""
    dout = np.ones((1, 1, 2, 2))
    argmax = np.array([0, 2, 8, 2**32 + 10], dtype=np.int64).reshape(1, 1, 2, 2)  # 2**32+10 wraps to 10
    with pytest.raises(ValueError, match=r"^argmax"):
        ops.maxpool_backward(dout, argmax, (1, 1, 4, 4), 2, 2, 2, 0)


def test_channels_last_input_gets_a_transpose_hint():
    """An (N, H, W, C) batch (Keras' layout) given to Convolution / Pooling raises the same ValueError as
    before, and the message suggests the transpose when the last axis is what the layer expects there."""
    x = z(2, 28, 28, 1, dtype=F32)
    conv = layers.Convolution(z(4, 1, 3, 3, dtype=F32), z(4, dtype=F32), 1, 1)
    hint = r"x looks channels-last \(N, H, W, C\): pass x\.transpose\(0, 3, 1, 2\), of shape \(2, 1, 28, 28\)"
    with pytest.raises(ValueError, match=r"^W: shape \(4, 1, 3, 3\) expects 1 input channels, but x: shape "
                                         r"\(2, 28, 28, 1\) has 28; " + hint):
        conv.forward(x)
    with pytest.raises(ValueError, match=r"^W: .*" + hint):
        ops.conv_backward(x, z(4, 1, 3, 3, dtype=F32), z(2, 4, 28, 28, dtype=F32), 1, 1)
    assert conv.forward(x.transpose(0, 3, 1, 2)).shape == (2, 4, 28, 28)
    with pytest.raises(ValueError, match=r"^pool window 2x2 is larger than the padded input 28x1 .*" + hint):
        layers.Pooling(2, 2).forward(x)
    with pytest.raises(ValueError, match=r"^pool window 2x2 is larger .*" + hint):
        layers.AvgPooling(2, 2).forward(x)
    assert layers.Pooling(2, 2).forward(x.transpose(0, 3, 1, 2)).shape == (2, 1, 14, 14)
    # no hint where the last axis is not what the layer expects
    no_hint = (lambda: conv.forward(z(2, 3, 8, 8, dtype=F32)),
               lambda: layers.Pooling(3, 3).forward(z(2, 2, 8, 2)))
    for f in no_hint:
        with pytest.raises(ValueError) as info:
            f()
        assert "transpose" not in str(info.value), info.value


def test_gemm_empty_dims():
    """M or N == 0 gives an empty result; K == 0 gives beta*out (zeros for beta=0), like np.matmul."""
    assert ops.gemm(z(0, 3), z(3, 4)).shape == (0, 4)
    assert ops.gemm(z(2, 3), z(3, 0)).shape == (2, 0)
    np.testing.assert_array_equal(ops.gemm(z(3, 0), z(0, 4)), np.zeros((3, 4)))
    out = np.full((3, 4), np.nan)
    np.testing.assert_array_equal(ops.gemm(z(3, 0), z(0, 4), out=out), np.zeros((3, 4)))
    out = np.ones((3, 4))
    np.testing.assert_array_equal(ops.gemm(z(3, 0), z(0, 4), beta=2.0, out=out), np.full((3, 4), 2.0))


def test_gemm_out_read_only():
    out = z(2, 2)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^out: must be a writeable"):
        ops.gemm(z(2, 3), z(3, 2), out=out)


def test_gemm_out_non_contiguous():
    out = z(2, 4)[:, ::2]
    with pytest.raises(ValueError, match=r"^out: must be a writeable C-contiguous"):
        ops.gemm(z(2, 3), z(3, 2), out=out)


# ======================================================================================================
# memory layouts give the same results


def _layouts(a):
    """(name, array equal in value to ``a`` but laid out differently)."""
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    yield "sliced", view
    rev = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[(slice(None, None, -1),) * a.ndim]
    yield "negative strides", rev
    ro = a.copy()
    ro.flags.writeable = False
    yield "read-only", ro
    yield "broadcast", np.broadcast_to(a, (1, *a.shape))[0]


def _labels(n, k):
    return np.arange(n) % k


LAYOUT_OPS = {
    "gemm": (lambda a, b: ops.gemm(a, b), [(5, 7), (7, 4)]),
    "gemm trans": (lambda a, b: ops.gemm(a, b, trans_a=True, trans_b=True), [(7, 5), (4, 7)]),
    "im2col": (lambda x: util.im2col(x, 3, 2, 2, 1), [(2, 3, 6, 5)]),
    "col2im": (lambda c: util.col2im(c, (2, 3, 6, 5), 3, 2, 2, 1), [(2 * 3 * 3, 3 * 3 * 2)]),
    "conv_forward": (lambda x, w, b: ops.conv_forward(x, w, b, 1, 1), [(2, 3, 6, 5), (4, 3, 3, 3), (4,)]),
    "conv_backward": (
        lambda x, w, d: ops.conv_backward(x, w, d, 2, 0),
        [(2, 3, 7, 6), (4, 3, 3, 2), (2, 4, 3, 3)],
    ),
    "maxpool_forward": (lambda x: ops.maxpool_forward(x, 3, 3, 2, 1), [(2, 3, 7, 6)]),
    "maxpool_backward": (
        lambda d: ops.maxpool_backward(
            d, np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3) % 42, (2, 3, 7, 6), 3, 3, 2, 1
        ),
        [(2, 3, 4, 3)],
    ),
    "avgpool_forward": (lambda x: ops.avgpool_forward(x, 2, 3, 1, 1), [(2, 3, 7, 6)]),
    "avgpool_backward": (lambda d: ops.avgpool_backward(d, (2, 3, 7, 6), 2, 3, 1, 1), [(2, 3, 8, 6)]),
    "relu_forward": (ops.relu_forward, [(3, 4, 5)]),
    "relu_backward": (ops.relu_backward, [(3, 4, 5), (3, 4, 5)]),
    "sigmoid_forward": (ops.sigmoid_forward, [(3, 4, 5)]),
    "sigmoid_backward": (ops.sigmoid_backward, [(3, 4, 5), (3, 4, 5)]),
    "affine_forward": (ops.affine_forward, [(6, 5), (5, 3), (3,)]),
    "affine_backward": (ops.affine_backward, [(6, 5), (5, 3), (6, 3)]),
    "softmax": (ops.softmax, [(6, 5)]),
    "softmax_ce labels": (lambda x: ops.softmax_cross_entropy(x, _labels(6, 5)), [(6, 5)]),
    "softmax_ce dense": (lambda x, t: ops.softmax_cross_entropy(x, t), [(6, 5), (6, 5)]),
    "softmax_ce_backward": (lambda y, t: ops.softmax_cross_entropy_backward(y, t, 0.5), [(6, 5), (6, 5)]),
    "dropout_forward": (lambda x: ops.dropout_forward(x, 0.5, 3), [(6, 5)]),
    "dropout_backward": (lambda d: ops.dropout_backward(d, (np.arange(30) % 3 == 0).reshape(6, 5)), [(6, 5)]),
    "batchnorm_forward_train": (
        lambda x, g, b: ops.batchnorm_forward_train(x, g, b, np.zeros(5), np.ones(5))[:3],
        [(6, 5), (5,), (5,)],
    ),
    "batchnorm_forward_infer": (
        lambda x, g, b, m, v: ops.batchnorm_forward_infer(x, g, b, m, np.abs(v) + 1),
        [(6, 5), (5,), (5,), (5,), (5,)],
    ),
    "batchnorm_backward": (
        lambda d, xc, xn, s, g: ops.batchnorm_backward(d, xc, xn, np.abs(s) + 1, g),
        [(6, 5), (6, 5), (6, 5), (5,), (5,)],
    ),
}


def _flat(res):
    if isinstance(res, tuple):
        return [r for item in res for r in _flat(item)]
    return [np.asarray(res)]


@pytest.mark.parametrize("name", list(LAYOUT_OPS), ids=list(LAYOUT_OPS))
def test_layouts_same_result(rng, dtype, name):
    f, shapes = LAYOUT_OPS[name]
    args = [rng.standard_normal(s).astype(dtype) for s in shapes]
    want = _flat(f(*args))
    for i in range(len(args)):
        for layout, a in _layouts(args[i]):
            np.testing.assert_array_equal(a, args[i])
            got = _flat(f(*args[:i], a, *args[i + 1 :]))
            for g, w in zip(got, want):
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w, err_msg=f"{name} arg {i} {layout}")


def test_layers_accept_layouts(rng, dtype):
    """The layers (which store x for backward) give the same forward and backward for a non-contiguous x."""
    x = rng.standard_normal((2, 3, 8, 6)).astype(dtype)
    Wt = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    Wa = rng.standard_normal((144, 4)).astype(dtype)
    for layout, xv in _layouts(x):
        for make in (
            lambda: layers.Convolution(Wt, b, 1, 1),
            lambda: layers.Pooling(2, 2),
            lambda: layers.AvgPooling(3, 3, 1, 1),
            lambda: layers.Relu(),
            lambda: layers.Sigmoid(),
            lambda: layers.Affine(Wa, b),
            lambda: layers.BatchNormalization(np.ones(144, dtype), np.zeros(144, dtype)),
        ):
            ref, lay = make(), make()
            want = ref.forward(x)
            got = lay.forward(xv)
            np.testing.assert_array_equal(got, want, err_msg=f"{type(lay).__name__} {layout}")
            dout = np.ones_like(want)
            np.testing.assert_array_equal(
                lay.backward(dout), ref.backward(dout), err_msg=f"{type(lay).__name__}"
            )


def test_inputs_not_modified(rng):
    """Kernels read inputs through const pointers: no input array is written."""
    x = rng.standard_normal((2, 3, 6, 6))
    Wt = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    saved = [a.copy() for a in (x, Wt, b)]
    out = ops.conv_forward(x, Wt, b, 1, 1)
    ops.conv_backward(x, Wt, out, 1, 1)
    ops.maxpool_forward(x, 2, 2)
    ops.softmax_cross_entropy(x.reshape(6, -1), np.zeros(6, int))
    for a, s in zip((x, Wt, b), saved):
        np.testing.assert_array_equal(a, s)


# ======================================================================================================
# raw bindings: must raise, never crash


def _c(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


# conv and pool kernels take stride (sh, sw) and pad (top, bottom, left, right)
S1, P0 = (1, 1), (0, 0, 0, 0)
RAW_CALLS = [
    (
        "gemm dtype",
        lambda: _cpu.gemm_f32(_c(2, 2), _c(2, 2, dtype=F32), _c(2, 2, dtype=F32)),
        TypeError,
        r"^a: dtype float64, expected float32",
    ),
    (
        "gemm non-contiguous",
        lambda: _cpu.gemm_f64(_c(4, 4)[::2], _c(4, 2), _c(2, 2)),
        ValueError,
        r"^a: array must be C-contiguous",
    ),
    ("gemm out shape", lambda: _cpu.gemm_f64(_c(2, 3), _c(3, 2), _c(3, 3)), ValueError, r"^out: shape"),
    ("gemm K", lambda: _cpu.gemm_f64(_c(2, 3), _c(4, 2), _c(2, 2)), ValueError, r"^b: shape"),
    ("gemm 1-D", lambda: _cpu.gemm_f64(_c(3), _c(3, 2), _c(1, 2)), ValueError, r"^a: expected a 2-D"),
    (
        "gemm None",
        lambda: _cpu.gemm_f64(_c(2, 2), _c(2, 2), None),
        TypeError,
        r"incompatible function arguments",
    ),
    (
        "im2col col shape",
        lambda: _cpu.im2col_f32(_c(2, 3, 5, 5, dtype=F32), _c(5, 5, dtype=F32), 3, 3, 1, 0),
        ValueError,
        r"^col: shape \(5, 5\), expected \(18, 27\)",
    ),
    (
        "im2col stride 0",
        lambda: _cpu.im2col_f64(_c(1, 1, 5, 5), _c(9, 9), 3, 3, 0, 0),
        ValueError,
        r"^stride",
    ),
    ("im2col pad -1", lambda: _cpu.im2col_f64(_c(1, 1, 5, 5), _c(9, 9), 3, 3, 1, -1), ValueError, r"^pad"),
    (
        "im2col filter 0",
        lambda: _cpu.im2col_f64(_c(1, 1, 5, 5), _c(9, 9), 0, 3, 1, 0),
        ValueError,
        r"^filter_h",
    ),
    (
        "im2col filter too big",
        lambda: _cpu.im2col_f64(_c(1, 1, 2, 2), _c(1, 9), 3, 3, 1, 0),
        ValueError,
        r"^filter 3x3 is larger",
    ),
    (
        "col2im x non-contiguous",
        lambda: _cpu.col2im_f64(_c(9, 9), _c(1, 1, 5, 10)[..., ::2], 3, 3, 1, 0),
        ValueError,
        r"^x: array must be C-contiguous",
    ),
    (
        "col2im x 3-D",
        lambda: _cpu.col2im_f64(_c(9, 9), _c(1, 5, 5), 3, 3, 1, 0),
        ValueError,
        r"^x: expected a 4-D",
    ),
    (
        "conv stride 0",
        lambda: _cpu.conv_forward_f64(_c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1), _c(1, 1, 3, 3), (0, 0), P0),
        ValueError,
        r"^stride must be > 0",
    ),
    (
        "conv channels",
        lambda: _cpu.conv_forward_f64(_c(1, 2, 5, 5), _c(1, 1, 3, 3), _c(1), _c(1, 1, 3, 3), S1, P0),
        ValueError,
        r"^W: shape",
    ),
    (
        "conv out read-only",
        lambda: _cpu.conv_forward_f64(_c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1), _readonly(_c(1, 1, 3, 3)), S1, P0),
        ValueError,
        r"^out: array is read-only",
    ),
    (
        "conv b dtype",
        lambda: _cpu.conv_forward_f64(_c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1, dtype=F32), _c(1, 1, 3, 3), S1, P0),
        TypeError,
        r"^b: dtype float32",
    ),
    (
        "conv_backward dW shape",
        lambda: _cpu.conv_backward_f64(
            _c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1, 1, 3, 3), _c(1, 1, 5, 5), _c(1, 1, 3, 2), _c(1), S1, P0
        ),
        ValueError,
        r"^dW: shape",
    ),
    (
        "conv_backward dx not an array",  # None means "no dx"; anything else must be the output array itself
        lambda: _cpu.conv_backward_f64(
            _c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1, 1, 3, 3), [[[[0.0] * 5] * 5]], _c(1, 1, 3, 3), _c(1), S1, P0
        ),
        TypeError,
        r"^dx: expected a NumPy array or None",
    ),
    (
        "conv_backward dx shape",
        lambda: _cpu.conv_backward_f64(
            _c(1, 1, 5, 5), _c(1, 1, 3, 3), _c(1, 1, 3, 3), _c(1, 1, 5, 4), _c(1, 1, 3, 3), _c(1), S1, P0
        ),
        ValueError,
        r"^dx: shape",
    ),
    (
        "maxpool pad",
        lambda: _cpu.maxpool_forward_f64(
            _c(1, 1, 4, 4), _c(1, 1, 3, 3), _c(1, 1, 3, 3, dtype=np.int32), 2, 2, S1, (2,) * 4
        ),
        ValueError,
        r"^pad must be < pool_h",
    ),
    (
        "maxpool argmax dtype",
        lambda: _cpu.maxpool_forward_f64(_c(1, 1, 4, 4), _c(1, 1, 2, 2), _c(1, 1, 2, 2), 2, 2, (2, 2), P0),
        TypeError,
        r"^argmax: dtype",
    ),
    (
        "maxpool_backward argmax range",
        lambda: _cpu.maxpool_backward_f64(
            np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 99, np.int32), _c(1, 1, 4, 4), 2, 2, (2, 2), P0
        ),
        ValueError,
        r"^argmax: value 99 at flat index 0 is out of range \[0, 16\)",
    ),
    (
        "maxpool_backward argmax negative",
        lambda: _cpu.maxpool_backward_f64(
            np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), -5, np.int32), _c(1, 1, 4, 4), 2, 2, (2, 2), P0
        ),
        ValueError,
        r"^argmax: value -5",
    ),
    (
        "avgpool huge pad",
        lambda: _cpu.avgpool_forward_f64(_c(1, 1, 4, 4), _c(1, 1, 3, 3), 2**62, 2**62, S1, (2**62 - 1,) * 4),
        ValueError,
        r"^pad is too large",
    ),
    (
        "maxpool huge window",  # the window-parameter limit of the one geometry check (common/geom.h)
        lambda: _cpu.maxpool_forward_f64(
            _c(1, 1, 4, 4), _c(1, 1, 1, 1), _c(1, 1, 1, 1, dtype=np.int32), 2**41, 2, S1, (1,) * 4
        ),
        ValueError,
        r"^pool_h is too large: 2199023255552 \(limit 2\*\*40\)",
    ),
    ("relu shape", lambda: _cpu.relu_forward_f64(_c(3), _c(4)), ValueError, r"^out: shape"),
    ("relu 2-D", lambda: _cpu.relu_forward_f64(_c(3, 1), _c(3, 1)), ValueError, r"^x: expected a 1-D"),
    (
        "relu list",
        lambda: _cpu.relu_forward_f64([1.0, 2.0], _c(2)),
        TypeError,
        r"incompatible function arguments",
    ),
    (
        "sigmoid_backward dtype",
        lambda: _cpu.sigmoid_backward_f32(_c(3, dtype=F32), _c(3), _c(3, dtype=F32)),
        TypeError,
        r"^out: dtype",
    ),
    (
        "affine_forward W shape",
        lambda: _cpu.affine_forward_f64(_c(2, 3), _c(4, 5), _c(5), _c(2, 5)),
        ValueError,
        r"W",
    ),
    ("softmax out shape", lambda: _cpu.softmax_forward_f64(_c(2, 3), _c(3, 2)), ValueError, r"^y: shape"),
    ("softmax empty", lambda: _cpu.softmax_forward_f64(_c(0, 3), _c(0, 3)), ValueError, r"^x: shape"),
    (
        "labels int32",
        lambda: _cpu.softmax_ce_forward_labels_f64(_c(2, 3), _c(2, dtype=np.int32), _c(2, 3)),
        TypeError,
        r"^t: dtype int32, expected int64",
    ),
    (
        "labels range",
        lambda: _cpu.softmax_ce_forward_labels_f64(_c(2, 3), np.array([0, 3]), _c(2, 3)),
        ValueError,
        r"^t: label 3 at index 1 is out of range \[0, 3\)",
    ),
    (
        "labels backward range",
        lambda: _cpu.softmax_ce_backward_labels_f32(
            _c(2, 3, dtype=F32), np.array([-1, 0]), _c(2, 3, dtype=F32), 1.0
        ),
        ValueError,
        r"^t: label -1 at index 0",
    ),
    (
        "labels non-contiguous",
        lambda: _cpu.softmax_ce_forward_labels_f64(_c(2, 3), np.zeros(4, np.int64)[::2], _c(2, 3)),
        ValueError,
        r"^t: array must",
    ),
    (
        "dense t shape",
        lambda: _cpu.softmax_ce_forward_dense_f64(_c(2, 3), _c(2, 4), _c(2, 3)),
        ValueError,
        r"^t: shape",
    ),
    (
        "dropout mask dtype",
        lambda: _cpu.dropout_forward_f64(_c(3), _c(3), _c(3, dtype=np.uint8), 0.5, 1),
        TypeError,
        r"^mask: dtype uint8, expected bool",
    ),
    (
        "dropout ratio",
        lambda: _cpu.dropout_forward_f64(_c(3), _c(3), _c(3, dtype=bool), 1.5, 1),
        ValueError,
        r"^ratio must be in \[0, 1\)",
    ),
    (
        "dropout negative seed",
        lambda: _cpu.dropout_forward_f64(_c(3), _c(3), _c(3, dtype=bool), 0.5, -1),
        TypeError,
        r"incompatible function arguments",
    ),
    (
        "dropout_backward mask shape",
        lambda: _cpu.dropout_backward_f64(_c(3), _c(4, dtype=bool), _c(3)),
        ValueError,
        r"^mask: shape",
    ),
    (
        "bn gamma",
        lambda: _cpu.batchnorm_forward_infer_f64(
            _c(3, 4), np.ones(3), _c(4), _c(4), np.ones(4), _c(3, 4), 1e-6
        ),
        ValueError,
        r"^gamma: shape \(3,\), expected \(4,\)",
    ),
    (
        "bn train std dtype",
        lambda: _cpu.batchnorm_forward_train_f64(
            _c(3, 4),
            np.ones(4),
            _c(4),
            _c(4),
            np.ones(4),
            _c(3, 4),
            _c(3, 4),
            _c(3, 4),
            _c(4, dtype=F32),
            0.9,
            1e-6,
        ),
        TypeError,
        r"^std: dtype",
    ),
    (
        "bn backward dx read-only",
        lambda: _cpu.batchnorm_backward_f64(
            _c(3, 4), _c(3, 4), _c(3, 4), np.ones(4), np.ones(4), _readonly(_c(3, 4)), _c(4), _c(4)
        ),
        ValueError,
        r"^dx: array is read-only",
    ),
    ("set_cpu_isa unknown", lambda: _cpu.set_cpu_isa("neon"), ValueError, r"unknown ISA 'neon'"),
]


def _readonly(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("f,exc,match", [c[1:] for c in RAW_CALLS], ids=[c[0] for c in RAW_CALLS])
def test_raw_binding_rejects(f, exc, match):
    with pytest.raises(exc, match=match):
        f()


@pytest.mark.parametrize(
    "f",
    [
        lambda: _cpu.conv_forward_f64(_c(1, 1, 4, 4), _c(1, 1, 3, 3), _c(1), _c(1, 1, 3, 3), S1, (2**62,) * 4),
        lambda: _cpu.im2col_f64(_c(1, 1, 4, 4), _c(1, 9), 3, 3, 1, 2**62),
        lambda: _cpu.col2im_f64(_c(1, 9), _c(1, 1, 4, 4), 3, 3, 1, 2**62),
    ],
    ids=["conv_forward", "im2col", "col2im"],
)
def test_raw_binding_huge_pad(f):
    """H + 2*pad must not overflow int64 (signed overflow is undefined behaviour): the binding must reject the
    pad by name, as pool.cpp does ("pad is too large"), not report a negative padded size."""
    with pytest.raises(ValueError, match=r"^pad") as info:
        f()
    assert not re.search(r"-\d", str(info.value)), info.value


def test_byte_swapped_inputs(rng):
    """Non-native byte order float64 (e.g. data read from a big-endian file) is still float64 to NumPy and
    to the book's layers; fastconv should convert it like any other layout, not reject it as a bad dtype."""
    x = rng.standard_normal((2, 3, 6, 6))
    Wt = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    swapped = x.astype(x.dtype.newbyteorder())
    assert swapped.dtype != np.float64 and np.array_equal(swapped, x)
    np.testing.assert_array_equal(ops.relu_forward(swapped), ops.relu_forward(x))
    np.testing.assert_array_equal(ops.conv_forward(swapped, Wt, b, 1, 1), ops.conv_forward(x, Wt, b, 1, 1))
    np.testing.assert_array_equal(ops.maxpool_forward(swapped, 2, 2)[0], ops.maxpool_forward(x, 2, 2)[0])
