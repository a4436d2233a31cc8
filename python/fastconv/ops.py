"""The op wrappers: every public function checks its arguments once (``fastconv._checks``, on shapes and dtypes
only), allocates its outputs through the array module of its inputs and calls the kernel module chosen for them
(both from ``fastconv._backend``), with the GIL released.

Checks raise a ``TypeError`` or ``ValueError`` whose message names the argument, the shape seen and the shape
expected. Arrays are made C-contiguous in the result dtype (NumPy's ``result_type`` of the float inputs, float32 or
float64) -- a copy only when needed. Layers (``fastconv.layers``) call only this module. The optimizer updates
live in ``fastconv._optim`` and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from . import _checks as chk
from . import _optim
from ._backend import array_module, kernel
from ._checks import check_seed
from ._optim import (
    adadelta_update,
    adagrad_update,
    adam_update,
    check_param_dicts,
    momentum_update,
    nesterov_update,
    optimizer_hyperparameters,
    optimizer_update,
    rmsprop_update,
    sgd_update,
)

__all__ = [
    "as_array",
    "check_labels",
    "gemm",
    "im2col",
    "col2im",
    "conv_forward",
    "conv_backward",
    "deconv_forward",
    "deconv_backward",
    "zeropad",
    "crop",
    "maxpool_forward",
    "maxpool_backward",
    "avgpool_forward",
    "avgpool_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "affine_forward",
    "affine_backward",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "check_seed",
    "dropout_forward",
    "dropout_infer",
    "dropout_backward",
    "batchnorm_forward_train",
    "batchnorm_forward_infer",
    "batchnorm_backward",
    # the optimizer updates of fastconv._optim
    *_optim.__all__,
]


# ======================================================================================================
# helpers


def as_array(x, name: str = "x"):
    """``x`` as an ndarray (no copy for ndarrays); a TypeError naming ``name`` if it cannot be one."""
    return chk.array(x, name)


def _c(a, dtype):
    """C-contiguous array of ``dtype``; copies only when needed (non-contiguous, sliced, Fortran, other dtype).
    Keeps the shape of 0-D arrays (ascontiguousarray returns them as 1-D)."""
    r = array_module(a).ascontiguousarray(a, dtype=dtype)
    return r.reshape(a.shape) if r.ndim != a.ndim else r


def _c_or_transposed(m, dtype, trans: bool = False) -> tuple:
    """(C-contiguous array of ``dtype``, trans) for an operand the kernels can read transposed (gemm, the affine
    layers): a 2-D Fortran-ordered ``m`` (a transposed view, such as the sequel's tied ``TimeAffine(embed_W.T)``)
    goes as ``m.T`` with ``trans`` flipped, since a copy would transpose the whole array first (BetterRnnlm's
    700 x 650 @ 650 x 10000 product: 54.7 ms through the copy, 29.0 ms read transposed, measured); anything
    else is made C-contiguous."""
    if m.ndim == 2 and not m.flags.c_contiguous and m.flags.f_contiguous:
        return _c(m.T, dtype), not trans
    return _c(m, dtype), trans


def check_labels(t, n_classes: int, name: str = "t") -> None:
    """Integer labels in [0, n_classes), or a ValueError naming ``name``, the first bad label and its index."""
    xp = array_module(t)
    t = xp.asarray(t)
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        flat = t.reshape(-1)
        i = int(xp.flatnonzero((flat < 0) | (flat >= n_classes))[0])
        raise ValueError(f"{name}: label {flat[i]} at index {i} is out of range [0, {n_classes})")


# ======================================================================================================
# GEMM


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0, out=None):
    """General matrix product ``alpha * op(a) @ op(b) + beta * out``.

    Parameters
    ----------
    a, b : array_like, 2-D float32 / float64
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b`` (handled by packing, no copy).
    alpha, beta : float
    out : ndarray, optional
        C-contiguous (M, N) array of the result dtype, read when ``beta != 0`` and written in place.

    Returns
    -------
    ndarray (M, N)
    """
    dtype, arr = chk.floats(half=True, a=a, b=b)
    a, b = arr["a"], arr["b"]
    M, N, _ = chk.gemm_shapes(a, b, trans_a, trans_b)
    alpha, beta = chk.real(alpha, "alpha"), chk.real(beta, "beta")
    xp = array_module(a)
    if out is None:
        if beta != 0.0:
            raise ValueError("out: beta != 0 needs an out array to accumulate into")
        out = xp.empty((M, N), dtype=dtype)
    else:
        chk.out_array(out, dtype, (M, N), "op(a) @ op(b)")
    a, trans_a = _c_or_transposed(a, dtype, trans_a)
    b, trans_b = _c_or_transposed(b, dtype, trans_b)
    # the kernel writes out while it still reads a and b block by block: an operand that overlaps out is
    # copied first (as NumPy's matmul does), otherwise later blocks would read already-overwritten values
    if xp.may_share_memory(a, out):
        a = a.copy()
    if xp.may_share_memory(b, out):
        b = b.copy()
    kernel("gemm", dtype, a)(a, b, out, bool(trans_a), bool(trans_b), alpha, beta)
    return out


# ======================================================================================================
# im2col / col2im (book layout)


def im2col(input_data, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0):
    """Unfold (N, C, H, W) into the book's column matrix (N*OH*OW, C*FH*FW); dtype follows the input."""
    dtype, arr = chk.floats(half=True, input_data=input_data)
    x = arr["input_data"]
    chk.ndim(x, "input_data", 4, "(N, C, H, W)")
    chk.nonempty(x, "input_data")
    fh, fw = chk.integer(filter_h, "filter_h", 1), chk.integer(filter_w, "filter_w", 1)
    stride, pad = chk.stride_pad(stride, pad)
    N, C = x.shape[:2]
    OH, OW = chk.im2col_shapes(x.shape, fh, fw, stride, pad, "input_data")
    col = array_module(x).empty((N * OH * OW, C * fh * fw), dtype=dtype)
    kernel("im2col", dtype, x)(_c(x, dtype), col, fh, fw, stride, pad)
    return col


def col2im(col, input_shape, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0):
    """Adjoint of :func:`im2col`: scatter-add the column matrix back into an array of ``input_shape``."""
    dtype, arr = chk.floats(half=True, col=col)
    col = arr["col"]
    shape = chk.shape_arg(input_shape, "input_shape")
    fh, fw = chk.integer(filter_h, "filter_h", 1), chk.integer(filter_w, "filter_w", 1)
    stride, pad = chk.stride_pad(stride, pad)
    N, C, H, W = shape
    chk.window(H, W, fh, fw, stride, pad, "filter", "input_shape", shape)
    chk.check_elements("x", N, C, H, W, culprit="input_shape")
    OH, OW = chk.im2col_shapes(shape, fh, fw, stride, pad, "input_shape")
    chk.ndim(col, "col", 2, "(N*OH*OW, C*FH*FW)")
    chk.same_shape(col, "col", (N * OH * OW, C * fh * fw), f"input_shape {chk.shape_str(shape)}, filter {fh}x{fw}")
    x = array_module(col).empty(shape, dtype=dtype)
    kernel("col2im", dtype, col)(_c(col, dtype), x, fh, fw, stride, pad)
    return x


# ======================================================================================================
# convolution


def _bias(b, dtype):
    """The bias as a contiguous array of ``dtype``, or None (no bias)."""
    return None if b is None else _c(b, dtype)


def conv_forward(x, W, b, stride=1, pad=0, *, dilation=1, groups: int = 1, relu: bool = False):
    """Convolution (cross-correlation) of x (N, C, H, W) with W (FN, C/groups, FH, FW) plus b (FN,).

    Parameters
    ----------
    x, W : array_like, float32 / float64
    b : array_like (FN,) or None
        None: no bias.
    stride : int or (sh, sw)
    pad : int, (ph, pw), (top, bottom, left, right), "valid" or "same"
        "same" follows TensorFlow: the output is ceil(H / sh) x ceil(W / sw), the odd pixel of padding at the
        bottom / right.
    dilation : int or (dh, dw)
        Taps ``dh`` rows (``dw`` columns) apart.
    groups : int
        Channels and filters split into ``groups`` independent convolutions; ``groups == C`` is a depthwise
        convolution (its own direct kernel).
    relu : bool
        Return ``relu_forward`` of the result, applied as the kernel writes its output (no pass over memory of
        its own; bit for bit the two calls' result).

    Returns
    -------
    ndarray (N, FN, OH, OW) of the result dtype of x, W and b.
    """
    dtype, arr = chk.floats(half=True, x=x, W=W) if b is None else chk.floats(half=True, x=x, W=W, b=b)
    x, W = arr["x"], arr["W"]
    g = chk.conv_geometry(x, W, stride, pad, dilation, groups)
    if b is not None:
        chk.same_shape(arr["b"], "b", (W.shape[0],), f"one bias per filter of W {chk.shape_str(W.shape)}")
    out = array_module(x).empty((x.shape[0], W.shape[0], g.OH, g.OW), dtype=dtype)
    kernel("conv_forward", dtype, x)(_c(x, dtype), _c(W, dtype), _bias(arr.get("b"), dtype), out, g.stride, g.pad,
                                     g.dilation, int(groups), bool(relu))
    return out


def conv_backward(x, W, dout, stride=1, pad=0, *, dilation=1, groups: int = 1, need_dx: bool = True) -> tuple:
    """Gradients (dx, dW, db) of :func:`conv_forward` given ``dout`` (N, FN, OH, OW).

    With ``need_dx=False`` the input gradient is not computed (``dx`` is None); dW and db are the same bits.
    """
    dtype, arr = chk.floats(half=True, x=x, W=W, dout=dout)
    x, W, dout = arr["x"], arr["W"], arr["dout"]
    g = chk.conv_geometry(x, W, stride, pad, dilation, groups)
    chk.same_shape(dout, "dout", (x.shape[0], W.shape[0], g.OH, g.OW), "the shape of the forward output")
    xp = array_module(x)
    dx = xp.empty(x.shape, dtype=dtype) if need_dx else None
    dW = xp.empty(W.shape, dtype=dtype)
    db = xp.empty((W.shape[0],), dtype=dtype)
    kernel("conv_backward", dtype, x)(_c(x, dtype), _c(W, dtype), _c(dout, dtype), dx, dW, db, g.stride, g.pad,
                                      g.dilation, int(groups))
    return dx, dW, db


def deconv_forward(x, W, b, stride=1, pad=0, output_padding=0):
    """Transposed convolution of x (N, C_in, H, W) with W (C_in, C_out, FH, FW) plus b (C_out,) or None, as
    ``torch.nn.functional.conv_transpose2d``: the input gradient of the convolution with the same stride and
    padding, whose output is x.

    Parameters
    ----------
    stride : int or (sh, sw)
    pad : int, (ph, pw), (top, bottom, left, right), "same" or "valid"
        The padding of the convolution it transposes (cropped from the output). "same" follows Keras'
        Conv2DTranspose (output H*sh x W*sw), "valid" too (output H*sh + max(FH - sh, 0)).
    output_padding : int or (oph, opw)
        Rows (columns) added at the bottom (right) of the output, each < the stride.

    Returns
    -------
    ndarray (N, C_out, (H - 1)*sh + FH - pt - pb + oph, (W - 1)*sw + FW - pl - pr + opw)
    """
    dtype, arr = chk.floats(half=True, x=x, W=W) if b is None else chk.floats(half=True, x=x, W=W, b=b)
    x, W = arr["x"], arr["W"]
    g = chk.deconv_geometry(x, W, stride, pad, output_padding)
    if b is not None:
        chk.same_shape(arr["b"], "b", (W.shape[1],), f"one bias per output channel of W {chk.shape_str(W.shape)}")
    y = array_module(x).empty((x.shape[0], W.shape[1], g.OH, g.OW), dtype=dtype)
    kernel("deconv_forward", dtype, x)(_c(x, dtype), _c(W, dtype), _bias(arr.get("b"), dtype), y, g.stride, g.pad)
    return y


def deconv_backward(x, W, dy, stride=1, pad=0, output_padding=0, *, need_dx: bool = True) -> tuple:
    """Gradients (dx, dW, db) of :func:`deconv_forward` given ``dy`` (N, C_out, OH, OW); ``need_dx=False`` skips
    dx (None)."""
    dtype, arr = chk.floats(half=True, x=x, W=W, dy=dy)
    x, W, dy = arr["x"], arr["W"], arr["dy"]
    g = chk.deconv_geometry(x, W, stride, pad, output_padding)
    chk.same_shape(dy, "dy", (x.shape[0], W.shape[1], g.OH, g.OW), "the shape of the forward output")
    xp = array_module(x)
    dx = xp.empty(x.shape, dtype=dtype) if need_dx else None
    dW = xp.empty(W.shape, dtype=dtype)
    db = xp.empty((W.shape[1],), dtype=dtype)
    kernel("deconv_backward", dtype, x)(_c(x, dtype), _c(W, dtype), _c(dy, dtype), dx, dW, db, g.stride, g.pad)
    return dx, dW, db


# ======================================================================================================
# zero padding and cropping (one kernel: a shift of every plane, zeros where nothing lands)


def _shift(x, pads, sign: int, dtype):
    t, b, l, r = pads
    N, C, H, W = x.shape
    out = array_module(x).empty((N, C, H + sign * (t + b), W + sign * (l + r)), dtype=dtype)
    kernel("zeropad", dtype, x)(_c(x, dtype), out, sign * t, sign * l)
    return out


def zeropad(x, pad):
    """x (N, C, H, W) with ``pad`` zeros around each plane: an int, (ph, pw), (top, bottom, left, right) or
    ((top, bottom), (left, right)). Returns (N, C, H + top + bottom, W + left + right)."""
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    return _shift(x, chk.zeropad_args(x, pad, "pad"), 1, dtype)


def crop(x, crop):
    """x (N, C, H, W) without ``crop`` rows and columns at its borders (the forms of :func:`zeropad`). Returns
    (N, C, H - top - bottom, W - left - right)."""
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    return _shift(x, chk.zeropad_args(x, crop, "crop"), -1, dtype)


# ======================================================================================================
# pooling


def maxpool_forward(x, pool_h: int, pool_w: int, stride=2, pad=0, *, keep_argmax: bool = True) -> tuple:
    """Max pooling; padding never wins. Returns (out, argmax) with argmax the int32 index ih*W+iw in each plane.
    ``stride`` is an int or (sh, sw); ``pad`` an int, (ph, pw), (top, bottom, left, right), "valid" or "same"
    (TensorFlow's rule). ``keep_argmax=False`` (inference: no backward follows) returns (out, None) and saves
    the int32 array, as large as ``out`` in float32."""
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    ph, pw, g = chk.pool_args(x, pool_h, pool_w, stride, pad)
    xp = array_module(x)
    out = xp.empty((x.shape[0], x.shape[1], g.OH, g.OW), dtype=dtype)
    argmax = xp.empty(out.shape, dtype=np.int32) if keep_argmax else None
    kernel("maxpool_forward", dtype, x)(_c(x, dtype), out, argmax, ph, pw, g.stride, g.pad)
    return out, argmax


def maxpool_backward(dout, argmax, x_shape, pool_h: int, pool_w: int, stride=2, pad=0):
    """Gradient of :func:`maxpool_forward`: routes each dout to its argmax position."""
    dtype, arr = chk.floats(half=True, dout=dout)
    dout = arr["dout"]
    shape, ph, pw, g = chk.pool_grad_shape(dout, x_shape, pool_h, pool_w, stride, pad)
    argmax = chk.argmax_array(argmax, dout.shape)
    if argmax.dtype != np.int32 and argmax.size:
        # a narrowing cast could wrap a bad index into a valid one; the kernel checks int32 values itself
        lo, hi = int(argmax.min()), int(argmax.max())
        if lo < 0 or hi >= shape[2] * shape[3]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"argmax: value {bad} is out of range [0, {shape[2] * shape[3]})")
    xp = array_module(dout)
    dx = xp.empty(shape, dtype=dtype)
    kernel("maxpool_backward", dtype, dout)(_c(dout, dtype), xp.ascontiguousarray(argmax, dtype=np.int32), dx, ph,
                                            pw, g.stride, g.pad)
    return dx


def avgpool_forward(x, pool_h: int, pool_w: int, stride=2, pad=0):
    """Average pooling; padded positions count as zeros (divide by pool_h*pool_w, also with pad="same", where
    TensorFlow divides by the real positions only). ``stride`` and ``pad`` as in :func:`maxpool_forward`."""
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    ph, pw, g = chk.pool_args(x, pool_h, pool_w, stride, pad)
    out = array_module(x).empty((x.shape[0], x.shape[1], g.OH, g.OW), dtype=dtype)
    kernel("avgpool_forward", dtype, x)(_c(x, dtype), out, ph, pw, g.stride, g.pad)
    return out


def avgpool_backward(dout, x_shape, pool_h: int, pool_w: int, stride=2, pad=0):
    """Gradient of :func:`avgpool_forward`."""
    dtype, arr = chk.floats(half=True, dout=dout)
    dout = arr["dout"]
    shape, ph, pw, g = chk.pool_grad_shape(dout, x_shape, pool_h, pool_w, stride, pad)
    dx = array_module(dout).empty(shape, dtype=dtype)
    kernel("avgpool_backward", dtype, dout)(_c(dout, dtype), dx, ph, pw, g.stride, g.pad)
    return dx


# ======================================================================================================
# element-wise activations (any shape)


def _unary(name: str, x, x_name: str = "x"):
    dtype, arr = chk.floats(half=True, **{x_name: x})
    x = _c(arr[x_name], dtype)
    out = array_module(x).empty(x.shape, dtype=dtype)
    if x.size:
        kernel(name, dtype, x)(x.reshape(-1), out.reshape(-1))
    return out


def _binary(name: str, dout, out):
    dtype, arr = chk.floats(half=True, dout=dout, out=out)
    dout, out = arr["dout"], arr["out"]
    chk.same_shape(dout, "dout", out.shape, "the shape of the forward output")
    dout, out = _c(dout, dtype), _c(out, dtype)
    dx = array_module(out).empty(out.shape, dtype=dtype)
    if dx.size:
        kernel(name, dtype, out)(dout.reshape(-1), out.reshape(-1), dx.reshape(-1))
    return dx


def relu_forward(x):
    """max(x, 0) elementwise (NaN propagates)."""
    return _unary("relu_forward", x)


def relu_backward(dout, out):
    """dout where the forward output ``out`` is > 0 (or NaN), else 0."""
    return _binary("relu_backward", dout, out)


def sigmoid_forward(x):
    """1 / (1 + exp(-x)) elementwise, in a form that never overflows."""
    return _unary("sigmoid_forward", x)


def sigmoid_backward(dout, out):
    """dout * (1 - out) * out, with ``out`` the forward output."""
    return _binary("sigmoid_backward", dout, out)


# ======================================================================================================
# affine


def affine_forward(x, W, b):
    """x (N, D) @ W (D, H) + b (H,). ``W`` may be a transposed view: it is read through strides, not copied."""
    dtype, arr = chk.floats(half=True, x=x, W=W, b=b)
    x, W, b = arr["x"], arr["W"], arr["b"]
    chk.affine_shapes(x, W)
    chk.same_shape(b, "b", (W.shape[1],), f"one bias per output of W {chk.shape_str(W.shape)}")
    out = array_module(x).empty((x.shape[0], W.shape[1]), dtype=dtype)
    w, trans_w = _c_or_transposed(W, dtype)
    kernel("affine_forward", dtype, x)(_c(x, dtype), w, _c(b, dtype), out, trans_w)
    return out


def affine_backward(x, W, dout) -> tuple:
    """Gradients (dx, dW, db) of :func:`affine_forward`."""
    dtype, arr = chk.floats(half=True, x=x, W=W, dout=dout)
    x, W, dout = arr["x"], arr["W"], arr["dout"]
    chk.affine_shapes(x, W)
    chk.same_shape(dout, "dout", (x.shape[0], W.shape[1]), "the shape of the forward output")
    xp = array_module(x)
    dx = xp.empty(x.shape, dtype=dtype)
    dW = xp.empty(W.shape, dtype=dtype)
    db = xp.empty((W.shape[1],), dtype=dtype)
    w, trans_w = _c_or_transposed(W, dtype)
    kernel("affine_backward", dtype, x)(_c(x, dtype), w, _c(dout, dtype), dx, dW, db, trans_w)
    return dx, dW, db


# ======================================================================================================
# softmax and cross-entropy


def softmax(x):
    """Row-wise softmax of a 1-D or 2-D array (max subtracted first)."""
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    x2 = _c(chk.rows(x, "x"), dtype)
    y = array_module(x).empty(x2.shape, dtype=dtype)
    kernel("softmax_forward", dtype, x)(x2, y)
    return y.reshape(x.shape)


def _targets(t, x2, x_shape, dtype) -> tuple:
    """(targets, is_labels): int64 labels (N,) or dense targets (N, K) of ``dtype``, contiguous."""
    t, labels, shape = chk.targets(t, x2.shape, x_shape)
    if labels:
        return array_module(t).ascontiguousarray(t, dtype=np.int64), True
    return _c(t.reshape(shape), dtype), False


def softmax_cross_entropy(x, t) -> tuple:
    """Softmax of scores ``x`` and the mean cross-entropy against ``t``.

    Parameters
    ----------
    x : array_like (N, K) or (K,)
    t : integer labels (N,) in [0, K), or one-hot / probability targets of x's shape

    Returns
    -------
    loss : float
        ``-sum(log(y[label] + 1e-7)) / N`` (labels) or ``-sum(t * log(y + 1e-7)) / N`` (dense targets).
    y : ndarray, the softmax of x (same shape as x)
    """
    dtype, arr = chk.floats(half=True, x=x)
    x = arr["x"]
    x2 = _c(chk.rows(x, "x"), dtype)
    tt, labels = _targets(t, x2, x.shape, dtype)
    y = array_module(x).empty(x2.shape, dtype=dtype)
    name = "softmax_ce_forward_labels" if labels else "softmax_ce_forward_dense"
    loss = kernel(name, dtype, x)(x2, tt, y)
    return float(loss), y.reshape(x.shape)


def softmax_cross_entropy_backward(y, t, dout: float = 1.0):
    """Gradient of :func:`softmax_cross_entropy` with respect to the scores: (y - onehot(t)) / N * dout."""
    dtype, arr = chk.floats(half=True, y=y)
    y = arr["y"]
    y2 = _c(chk.rows(y, "y"), dtype)
    tt, labels = _targets(t, y2, y.shape, dtype)
    dout = chk.real(dout, "dout")
    dx = array_module(y).empty(y2.shape, dtype=dtype)
    name = "softmax_ce_backward_labels" if labels else "softmax_ce_backward_dense"
    kernel(name, dtype, y)(y2, tt, dx, dout)
    return dx.reshape(y.shape)


# ======================================================================================================
# dropout


def dropout_forward(x, dropout_ratio: float, seed: int) -> tuple:
    """Training-mode dropout: keeps each element with probability 1 - ratio. Returns (out, bool mask).

    The mask comes from a counter-based generator keyed by ``seed``: the same seed gives the same mask
    whatever the thread count.
    """
    dtype, arr = chk.floats(half=True, x=x)
    x = _c(arr["x"], dtype)
    r = chk.ratio(dropout_ratio)
    seed = check_seed(seed)
    xp = array_module(x)
    out = xp.empty(x.shape, dtype=dtype)
    mask = xp.empty(x.shape, dtype=np.bool_)
    if x.size:
        kernel("dropout_forward", dtype, x)(x.reshape(-1), out.reshape(-1), mask.reshape(-1), r, seed)
    return out, mask


def dropout_infer(x, dropout_ratio: float):
    """Inference-mode dropout: x * (1 - ratio), dtype preserved."""
    dtype, arr = chk.floats(half=True, x=x)
    r = chk.ratio(dropout_ratio)
    return arr["x"] * dtype.type(1.0 - r)


def dropout_backward(dout, mask):
    """dout * mask."""
    dtype, arr = chk.floats(half=True, dout=dout)
    dout = _c(arr["dout"], dtype)
    mask = chk.bool_mask(mask, dout.shape)
    xp = array_module(dout)
    mask = xp.ascontiguousarray(mask)
    dx = xp.empty(dout.shape, dtype=dtype)
    if dx.size:
        kernel("dropout_backward", dtype, dout)(dout.reshape(-1), mask.reshape(-1), dx.reshape(-1))
    return dx


# ======================================================================================================
# batch normalization (2-D: per-column statistics)


def _bn_params(x, dtype, x_name: str = "x", **params) -> dict:
    """The per-feature arrays, checked, as contiguous (D,) arrays of ``dtype``."""
    d = x.shape[1]
    return {name: _c(chk.bn_param(p, name, x, x_name).reshape(d), dtype) for name, p in params.items()}


def _bn_x(x, name: str = "x"):
    dtype, arr = chk.floats(half=True, **{name: x})
    x = arr[name]
    chk.ndim(x, name, 2, "(N, D)")
    chk.nonempty(x, name)
    return dtype, _c(x, dtype)


def _write_back_running(xp, users, works) -> None:
    """The batch norms' kernels update contiguous working copies of the running statistics: write them back where
    they are not the caller's arrays."""
    for user, work in zip(users, works):
        if work is not user and not xp.shares_memory(work, user):
            user[...] = work.reshape(user.shape)


def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum: float = 0.9, eps: float = 1e-6):
    """Training-mode batch normalization of x (N, D) over the batch; updates running_mean/var in place.

    Returns
    -------
    out, xc, xn : ndarray (N, D)
    std : ndarray (D,)
    """
    dtype, x = _bn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta)
    rm, rv = chk.array(running_mean, "running_mean"), chk.array(running_var, "running_var")
    for name, a in (("running_mean", rm), ("running_var", rv)):
        chk.writeable(a, name, "training mode updates it in place")
    stats = _bn_params(x, dtype, running_mean=rm, running_var=rv)
    momentum, eps = chk.real(momentum, "momentum"), chk.eps(eps)
    n, d = x.shape
    xp = array_module(x)
    out, xc, xn = (xp.empty((n, d), dtype=dtype) for _ in range(3))
    std = xp.empty((d,), dtype=dtype)
    kernel("batchnorm_forward_train", dtype, x)(x, p["gamma"], p["beta"], stats["running_mean"],
                                                stats["running_var"], out, xc, xn, std, momentum, eps)
    _write_back_running(xp, (rm, rv), (stats["running_mean"], stats["running_var"]))
    return out, xc, xn, std


def batchnorm_forward_infer(x, gamma, beta, running_mean, running_var, eps: float = 1e-6):
    """Inference-mode batch normalization with the running statistics."""
    dtype, x = _bn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    out = array_module(x).empty(x.shape, dtype=dtype)
    kernel("batchnorm_forward_infer", dtype, x)(x, p["gamma"], p["beta"], p["running_mean"], p["running_var"], out,
                                                chk.eps(eps))
    return out


def batchnorm_backward(dout, xc, xn, std, gamma) -> tuple:
    """Gradients (dx, dgamma, dbeta) of training-mode batch normalization."""
    dtype, arr = chk.floats(half=True, dout=dout, xc=xc, xn=xn, std=std, gamma=gamma)
    dout = arr["dout"]
    chk.ndim(dout, "dout", 2, "(N, D)")
    chk.nonempty(dout, "dout")
    for name in ("xc", "xn"):
        chk.same_shape(arr[name], name, dout.shape, "the shape of dout")
    p = _bn_params(dout, dtype, "dout", std=arr["std"], gamma=arr["gamma"])
    n, d = dout.shape
    xp = array_module(dout)
    dx = xp.empty((n, d), dtype=dtype)
    dgamma = xp.empty((d,), dtype=dtype)
    dbeta = xp.empty((d,), dtype=dtype)
    kernel("batchnorm_backward", dtype, dout)(_c(dout, dtype), _c(arr["xc"], dtype), _c(arr["xn"], dtype), p["std"],
                                              p["gamma"], dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# ======================================================================================================
# layers of issue 16 (elementwise and normalisation half): leaky ReLU, tanh, spatial batch norm, global
# pooling, upsampling, two-input layers, elementwise losses

__all__ += [
    "leaky_relu_forward",
    "leaky_relu_backward",
    "tanh_forward",
    "tanh_backward",
    "spatial_batchnorm_forward_train",
    "spatial_batchnorm_forward_infer",
    "spatial_batchnorm_backward",
    "global_avgpool_forward",
    "global_avgpool_backward",
    "global_maxpool_forward",
    "global_maxpool_backward",
    "upsample_forward",
    "upsample_backward",
    "add_forward",
    "concat_forward",
    "concat_backward",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_backward",
    "mean_squared_error",
    "mean_squared_error_backward",
]


def leaky_relu_forward(x, alpha: float = 0.2):
    """``x`` where x > 0, ``alpha * x`` elsewhere (NaN propagates); ``alpha`` >= 0."""
    dtype, arr = chk.floats(half=True, x=x)
    a = chk.alpha(alpha)
    x = _c(arr["x"], dtype)
    out = array_module(x).empty(x.shape, dtype=dtype)
    if x.size:
        kernel("leaky_relu_forward", dtype, x)(x.reshape(-1), out.reshape(-1), a)
    return out


def leaky_relu_backward(dout, out, alpha: float = 0.2):
    """``dout`` where the forward output ``out`` is > 0, ``alpha * dout`` elsewhere."""
    dtype, arr = chk.floats(half=True, dout=dout, out=out)
    a = chk.alpha(alpha)
    dout, out = arr["dout"], arr["out"]
    chk.same_shape(dout, "dout", out.shape, "the shape of the forward output")
    dout, out = _c(dout, dtype), _c(out, dtype)
    dx = array_module(out).empty(out.shape, dtype=dtype)
    if dx.size:
        kernel("leaky_relu_backward", dtype, out)(dout.reshape(-1), out.reshape(-1), dx.reshape(-1), a)
    return dx


def tanh_forward(x):
    """tanh(x) elementwise."""
    return _unary("tanh_forward", x)


def tanh_backward(dout, out):
    """``dout * (1 - out**2)``, with ``out`` the forward output."""
    return _binary("tanh_backward", dout, out)


# ------------------------------------------------------------------------------------------------------
# spatial batch normalization (per-channel statistics over N, H, W)


def _sbn_x(x, name: str = "x"):
    dtype, arr = chk.floats(half=True, **{name: x})
    chk.nchw(arr[name], name)
    return dtype, _c(arr[name], dtype)


def spatial_batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum: float = 0.9,
                                    eps: float = 1e-5) -> tuple:
    """Training-mode batch normalization of x (N, C, H, W) with one mean and (biased) variance per channel
    over (N, H, W); updates running_mean / running_var in place: ``running = momentum * running +
    (1 - momentum) * batch``.

    Returns
    -------
    out : ndarray (N, C, H, W)
    mean, invstd : float64 ndarrays (C,), the batch mean and ``1 / sqrt(var + eps)`` (for the backward)
    """
    dtype, x = _sbn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta)
    rm, rv = chk.array(running_mean, "running_mean"), chk.array(running_var, "running_var")
    for name, a in (("running_mean", rm), ("running_var", rv)):
        chk.writeable(a, name, "training mode updates it in place")
    stats = _bn_params(x, dtype, running_mean=rm, running_var=rv)
    momentum, eps = chk.real(momentum, "momentum"), chk.eps(eps)
    xp = array_module(x)
    c = x.shape[1]
    out = xp.empty(x.shape, dtype=dtype)
    mean, invstd = xp.empty((c,), dtype=np.float64), xp.empty((c,), dtype=np.float64)
    kernel("spatial_batchnorm_forward_train", dtype, x)(x, p["gamma"], p["beta"], stats["running_mean"],
                                                        stats["running_var"], out, mean, invstd, momentum,
                                                        eps)
    _write_back_running(xp, (rm, rv), (stats["running_mean"], stats["running_var"]))
    return out, mean, invstd


def spatial_batchnorm_forward_infer(x, gamma, beta, running_mean, running_var, eps: float = 1e-5):
    """Inference-mode spatial batch normalization of x (N, C, H, W) with the running statistics."""
    dtype, x = _sbn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    out = array_module(x).empty(x.shape, dtype=dtype)
    kernel("spatial_batchnorm_forward_infer", dtype, x)(x, p["gamma"], p["beta"], p["running_mean"],
                                                        p["running_var"], out, chk.eps(eps))
    return out


def spatial_batchnorm_backward(dout, x, mean, invstd, gamma) -> tuple:
    """Gradients (dx, dgamma, dbeta) of :func:`spatial_batchnorm_forward_train`, given its input ``x`` and the
    ``mean`` and ``invstd`` it returned."""
    dtype, arr = chk.floats(half=True, dout=dout, x=x, gamma=gamma)
    dout, x = arr["dout"], arr["x"]
    chk.nchw(dout, "dout")
    chk.same_shape(x, "x", dout.shape, "the shape of dout")
    p = _bn_params(dout, dtype, "dout", gamma=arr["gamma"])
    st = {}
    for name, a in (("mean", mean), ("invstd", invstd)):
        a = chk.array(a, name)
        chk.check_float(a, name)
        chk.same_shape(a, name, (dout.shape[1],),
                       f"one value per channel of dout {chk.shape_str(dout.shape)}")
        st[name] = _c(a, np.float64)
    xp = array_module(dout)
    c = dout.shape[1]
    dx = xp.empty(dout.shape, dtype=dtype)
    dgamma, dbeta = xp.empty((c,), dtype=dtype), xp.empty((c,), dtype=dtype)
    kernel("spatial_batchnorm_backward", dtype, dout)(_c(dout, dtype), _c(x, dtype), st["mean"], st["invstd"],
                                                      p["gamma"], dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# ------------------------------------------------------------------------------------------------------
# global pooling: (N, C, H, W) -> (N, C)


def _pool_grad(dout, x_shape) -> tuple:
    """(dtype, dout, x_shape) of a global pooling backward: dout (N, C) against the forward input's shape."""
    dtype, arr = chk.floats(half=True, dout=dout)
    shape = chk.shape_arg(x_shape, "x_shape")
    chk.check_elements("dx", *shape, culprit="x_shape")
    chk.same_shape(arr["dout"], "dout", shape[:2], "the shape of the forward output (N, C)")
    return dtype, _c(arr["dout"], dtype), shape


def global_avgpool_forward(x):
    """Mean of each (H, W) plane of x (N, C, H, W): an (N, C) array."""
    dtype, x = _sbn_x(x)
    out = array_module(x).empty(x.shape[:2], dtype=dtype)
    kernel("global_avgpool_forward", dtype, x)(x, out)
    return out


def global_avgpool_backward(dout, x_shape):
    """Gradient of :func:`global_avgpool_forward`: dout[n, c] / (H * W) over each plane."""
    dtype, dout, shape = _pool_grad(dout, x_shape)
    dx = array_module(dout).empty(shape, dtype=dtype)
    kernel("global_avgpool_backward", dtype, dout)(dout, dx)
    return dx


def global_maxpool_forward(x) -> tuple:
    """Max of each (H, W) plane of x (N, C, H, W). Returns (out, argmax), both (N, C); argmax is the int64
    index h*W + w of the first maximum in its plane (the first NaN if there is one, as np.argmax)."""
    dtype, x = _sbn_x(x)
    xp = array_module(x)
    out = xp.empty(x.shape[:2], dtype=dtype)
    argmax = xp.empty(x.shape[:2], dtype=np.int64)
    kernel("global_maxpool_forward", dtype, x)(x, out, argmax)
    return out, argmax


def global_maxpool_backward(dout, argmax, x_shape):
    """Gradient of :func:`global_maxpool_forward`: each dout[n, c] goes to its argmax position."""
    dtype, dout, shape = _pool_grad(dout, x_shape)
    argmax = chk.argmax_array(argmax, dout.shape)
    xp = array_module(dout)
    dx = xp.empty(shape, dtype=dtype)
    # int64 holds every integer dtype's values except uint64 above 2**63, which the kernel's range check then
    # sees as negative: a bad index is rejected either way
    kernel("global_maxpool_backward", dtype, dout)(dout, xp.ascontiguousarray(argmax, dtype=np.int64), dx)
    return dx


# ------------------------------------------------------------------------------------------------------
# upsampling by integer factors


def upsample_forward(x, scale=2, mode: str = "nearest"):
    """Upsample x (N, C, H, W) by ``scale`` (an int or (scale_h, scale_w)) to (N, C, H*scale_h, W*scale_w):
    ``mode="nearest"`` repeats pixels, ``"bilinear"`` interpolates as torch's ``align_corners=False``."""
    dtype, x = _sbn_x(x)
    sh, sw = chk.scale_pair(scale)
    mode = chk.upsample_mode(mode)
    out = array_module(x).empty(chk.upsample_shapes(x.shape, sh, sw), dtype=dtype)
    kernel(f"upsample_{mode}_forward", dtype, x)(x, out, sh, sw)
    return out


def upsample_backward(dout, x_shape, scale=2, mode: str = "nearest"):
    """Gradient of :func:`upsample_forward` with respect to its input of shape ``x_shape``."""
    dtype, arr = chk.floats(half=True, dout=dout)
    shape = chk.shape_arg(x_shape, "x_shape")
    sh, sw = chk.scale_pair(scale)
    mode = chk.upsample_mode(mode)
    chk.check_elements("dx", *shape, culprit="x_shape")
    chk.same_shape(arr["dout"], "dout", chk.upsample_shapes(shape, sh, sw),
                   "the shape of the forward output")
    dout = _c(arr["dout"], dtype)
    dx = array_module(dout).empty(shape, dtype=dtype)
    kernel(f"upsample_{mode}_backward", dtype, dout)(dout, dx, sh, sw)
    return dx


# ------------------------------------------------------------------------------------------------------
# two inputs: sum and concatenation (pure data movement, done by the array module at memory bandwidth)


def add_forward(a, b):
    """``a + b`` for two arrays of one shape (no broadcasting), in their result dtype."""
    dtype, arr = chk.floats(half=True, a=a, b=b)
    a, b = arr["a"], arr["b"]
    chk.same_shape(b, "b", a.shape, "the shape of a")
    return array_module(a).add(a, b, dtype=dtype)


def _input_name(i: int) -> str:
    """The name of a layer's i-th input in messages: a, b, c, ... (x26, x27, ... beyond)."""
    return chr(ord("a") + i) if i < 26 else f"x{i}"


def concat_forward(xs, axis: int = 1):
    """The arrays of ``xs`` (two or more, named a, b, c, ... in messages) joined along ``axis``; every other
    extent must match."""
    xs = list(xs)
    if len(xs) < 2:
        raise ValueError(f"xs: expected two or more arrays to join, got {len(xs)}")
    names = [_input_name(i) for i in range(len(xs))]
    dtype, arr = chk.floats(half=True, **dict(zip(names, xs)))
    xs = [arr[n] for n in names]
    ax = chk.concat_axis(axis, xs[0].ndim)
    for n, x in zip(names[1:], xs[1:]):
        chk.concat_shapes(xs[0], x, ax, n)
    return array_module(xs[0]).concatenate(xs, axis=ax).astype(dtype, copy=False)


def concat_backward(dout, lengths, axis: int = 1) -> tuple:
    """Split ``dout`` along ``axis`` into the gradients of :func:`concat_forward`'s inputs: ``lengths`` lists each
    input's extent along the axis (an int is the first of two inputs'). New C-contiguous arrays (never views of
    dout)."""
    dtype, arr = chk.floats(half=True, dout=dout)
    dout = arr["dout"]
    ax = chk.concat_axis(axis, dout.ndim)
    if isinstance(lengths, (list, tuple)):
        sizes = [chk.integer(k, f"lengths[{i}]", 0, dout.shape[ax]) for i, k in enumerate(lengths)]
        if sum(sizes) != dout.shape[ax]:
            raise ValueError(f"lengths: {list(sizes)} add up to {sum(sizes)}, but dout has {dout.shape[ax]} entries "
                             f"along axis {ax}")
        cuts = list(np.cumsum(sizes[:-1]))
    else:
        cuts = [chk.integer(lengths, "a_len", 0, dout.shape[ax])]
    xp = array_module(dout)
    return tuple(xp.array(part, dtype=dtype, order="C", copy=True) for part in xp.split(dout, cuts, axis=ax))


# ------------------------------------------------------------------------------------------------------
# elementwise losses (targets of the shape of the scores)


def _loss_args(y, t, y_name: str) -> tuple:
    dtype, arr = chk.floats(half=True, **{y_name: y})
    y = arr[y_name]
    chk.nonempty(y, y_name)
    t = chk.loss_targets(t, y.shape, y_name)
    return dtype, _c(y, dtype), _c(t, dtype)


def sigmoid_cross_entropy(x, t) -> tuple:
    """Sigmoid of logits ``x`` and the binary cross-entropy against targets ``t`` of x's shape, averaged over
    all elements (Keras' ``BinaryCrossentropy(from_logits=True)``, torch's ``BCEWithLogitsLoss``); computed
    as ``max(x, 0) - x*t + log(1 + exp(-|x|))``, finite for any finite x.

    Returns
    -------
    loss : float
    y : ndarray, ``sigmoid(x)`` (x's shape), for the backward
    """
    dtype, x, t = _loss_args(x, t, "x")
    y = array_module(x).empty(x.shape, dtype=dtype)
    loss = kernel("sigmoid_bce_forward", dtype, x)(x.reshape(-1), t.reshape(-1), y.reshape(-1))
    return float(loss), y


def sigmoid_cross_entropy_backward(y, t, dout: float = 1.0):
    """Gradient of :func:`sigmoid_cross_entropy` with respect to the logits: ``(y - t) / y.size * dout``."""
    dtype, y, t = _loss_args(y, t, "y")
    dout = chk.real(dout, "dout")
    dx = array_module(y).empty(y.shape, dtype=dtype)
    kernel("sigmoid_bce_backward", dtype, y)(y.reshape(-1), t.reshape(-1), dx.reshape(-1), dout)
    return dx


def mean_squared_error(y, t) -> float:
    """``mean((y - t)**2)`` over all elements (Keras' ``mse``, torch's ``MSELoss``)."""
    dtype, y, t = _loss_args(y, t, "y")
    return float(kernel("mse_forward", dtype, y)(y.reshape(-1), t.reshape(-1)))


def mean_squared_error_backward(y, t, dout: float = 1.0):
    """Gradient of :func:`mean_squared_error` with respect to ``y``: ``2 * (y - t) / y.size * dout``."""
    dtype, y, t = _loss_args(y, t, "y")
    dout = chk.real(dout, "dout")
    dx = array_module(y).empty(y.shape, dtype=dtype)
    kernel("mse_backward", dtype, y)(y.reshape(-1), t.reshape(-1), dx.reshape(-1), dout)
    return dx


# ======================================================================================================
# recurrent cells over whole sequences (the sequel's TimeRNN / TimeLSTM / TimeGRU). xs is (N, T, D), Wx (D, G*H),
# Wh (H, G*H), b (G*H,) with G = 1 (RNN), 4 (LSTM: f, g, i, o), 3 (GRU: z, r, h); states are (N, H).


def _recurrent(xs, Wx, Wh, b, n_gates: int, cell: str, **more) -> tuple:
    """Checked, contiguous arrays of the result dtype and the sizes (N, T, D, H); ``more`` are the states and
    caches, checked against the shapes they must have (named as in the kernels)."""
    named = {"xs": xs, "Wx": Wx, "Wh": Wh, **({"b": b} if b is not None else {}), **more}
    dtype, arr = chk.floats(half=True, **named)
    N, T, D, H = chk.recurrent_shapes(arr["xs"], arr["Wx"], arr["Wh"], arr.get("b"), n_gates, cell)
    G = n_gates * H
    shapes = {"h0": (N, H), "c0": (N, H), "hs": (N, T, H), "cs": (N, T, H), "dhs": (N, T, H), "rh": (N, T, H),
              "gates": (N, T, G), "bh": (G,), "rec": (N, T, H)}
    chk.seq_arrays(shapes, **{k: arr[k] for k in more})
    return dtype, {k: _c(a, dtype) for k, a in arr.items()}, (N, T, D, H)


def _recurrent_grads(xp, dtype, N, T, D, H, n_gates: int, states: int) -> tuple:
    """Fresh (dxs, dWx, dWh, db, dh0[, dc0]) for a backward pass."""
    G = n_gates * H
    out = [xp.empty((N, T, D), dtype=dtype), xp.empty((D, G), dtype=dtype), xp.empty((H, G), dtype=dtype),
           xp.empty((G,), dtype=dtype)]
    return tuple(out + [xp.empty((N, H), dtype=dtype) for _ in range(states)])


def rnn_forward(xs, Wx, Wh, b, h0):
    """Simple RNN over all T steps: ``hs[:, t] = tanh(xs[:, t] @ Wx + h_{t-1} @ Wh + b)``, h_{-1} = h0.

    Returns
    -------
    hs : ndarray (N, T, H)
    """
    dtype, a, (N, T, _, H) = _recurrent(xs, Wx, Wh, b, 1, "RNN", h0=h0)
    hs = array_module(a["xs"]).empty((N, T, H), dtype=dtype)
    kernel("rnn_forward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"], hs)
    return hs


def rnn_backward(xs, Wx, Wh, h0, hs, dhs) -> tuple:
    """Backward through time of :func:`rnn_forward`: (dxs, dWx, dWh, db, dh0) for the gradient ``dhs`` of hs."""
    dtype, a, (N, T, D, H) = _recurrent(xs, Wx, Wh, None, 1, "RNN", h0=h0, hs=hs, dhs=dhs)
    g = _recurrent_grads(array_module(a["xs"]), dtype, N, T, D, H, 1, 1)
    kernel("rnn_backward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["h0"], a["hs"], a["dhs"], *g)
    return g


def lstm_forward(xs, Wx, Wh, b, h0, c0) -> tuple:
    """LSTM over all T steps, gate columns (f, g, i, o) as the sequel's: ``c = f*c_prev + g*i``, ``h = o*tanh(c)``.

    Returns
    -------
    hs, cs : ndarray (N, T, H)
        Hidden and cell states of every step.
    gates : ndarray (N, T, 4H)
        The activated gates of every step (for :func:`lstm_backward`).
    """
    dtype, a, (N, T, _, H) = _recurrent(xs, Wx, Wh, b, 4, "LSTM", h0=h0, c0=c0)
    xp = array_module(a["xs"])
    hs, cs, gates = xp.empty((N, T, H), dtype=dtype), xp.empty((N, T, H), dtype=dtype), \
        xp.empty((N, T, 4 * H), dtype=dtype)
    kernel("lstm_forward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"], a["c0"], hs, cs, gates)
    return hs, cs, gates


def lstm_backward(xs, Wx, Wh, h0, c0, hs, cs, gates, dhs, dc_last=None) -> tuple:
    """Backward through time of :func:`lstm_forward`: (dxs, dWx, dWh, db, dh0, dc0).

    ``dc_last`` (N, H) is the gradient of the last cell state; None (the sequel's TimeLSTM) means zeros.
    """
    dtype, a, (N, T, D, H) = _recurrent(xs, Wx, Wh, None, 4, "LSTM", h0=h0, c0=c0, hs=hs, cs=cs, gates=gates,
                                        dhs=dhs)
    xp = array_module(a["xs"])
    if dc_last is None:
        dcl = xp.zeros((N, H), dtype=dtype)
    else:
        _, d = chk.floats(half=True, dc_last=dc_last)
        chk.same_shape(d["dc_last"], "dc_last", (N, H), "the shape of the cell state")
        dcl = _c(d["dc_last"], dtype)
    g = _recurrent_grads(xp, dtype, N, T, D, H, 4, 2)
    kernel("lstm_backward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["h0"], a["c0"], a["hs"], a["cs"],
                                            a["gates"], a["dhs"], dcl, *g)
    return g


def gru_forward(xs, Wx, Wh, b, h0) -> tuple:
    """GRU over all T steps, gate columns (z, r, h) as the sequel's:
    ``h = (1 - z) * h_prev + z * tanh(x Wxh + (r * h_prev) Whh + bh)``.

    Returns
    -------
    hs : ndarray (N, T, H)
    gates : ndarray (N, T, 3H)
        The activated z, r and candidate of every step.
    rh : ndarray (N, T, H)
        ``r * h_prev`` of every step (gates and rh are kept for :func:`gru_backward`).
    """
    dtype, a, (N, T, _, H) = _recurrent(xs, Wx, Wh, b, 3, "GRU", h0=h0)
    xp = array_module(a["xs"])
    hs, gates, rh = xp.empty((N, T, H), dtype=dtype), xp.empty((N, T, 3 * H), dtype=dtype), \
        xp.empty((N, T, H), dtype=dtype)
    kernel("gru_forward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["b"], a["h0"], hs, gates, rh)
    return hs, gates, rh


def gru_backward(xs, Wx, Wh, h0, hs, gates, rh, dhs) -> tuple:
    """Backward through time of :func:`gru_forward`: (dxs, dWx, dWh, db, dh0)."""
    dtype, a, (N, T, D, H) = _recurrent(xs, Wx, Wh, None, 3, "GRU", h0=h0, hs=hs, gates=gates, rh=rh, dhs=dhs)
    g = _recurrent_grads(array_module(a["xs"]), dtype, N, T, D, H, 3, 1)
    kernel("gru_backward", dtype, a["xs"])(a["xs"], a["Wx"], a["Wh"], a["h0"], a["hs"], a["gates"], a["rh"],
                                           a["dhs"], *g)
    return g


def gru_reset_after_forward(xs, Wx, Wh, bx, bh, h0) -> tuple:
    """Keras 3's GRU (``reset_after=True``, cuDNN's) over all T steps, gate columns (z, r, h):
    ``h~ = tanh(x Wxh + bxh + r * (h_prev Whh + bhh))``, ``h = z * h_prev + (1 - z) * h~``, with the input
    bias bx and the recurrent bias bh (3H each).

    Returns
    -------
    hs : ndarray (N, T, H)
    gates : ndarray (N, T, 3H)
        The activated z, r and candidate of every step.
    rec : ndarray (N, T, H)
        ``h_prev Whh + bhh`` of every step (gates and rec are kept for :func:`gru_reset_after_backward`).
    """
    dtype, a, (N, T, _, H) = _recurrent(xs, Wx, Wh, bx, 3, "GRU", bh=bh, h0=h0)
    xp = array_module(a["xs"])
    hs, gates, rec = (
        xp.empty((N, T, H), dtype=dtype),
        xp.empty((N, T, 3 * H), dtype=dtype),
        xp.empty((N, T, H), dtype=dtype),
    )
    kernel("gru_reset_after_forward", dtype, a["xs"])(
        a["xs"], a["Wx"], a["Wh"], a["b"], a["bh"], a["h0"], hs, gates, rec
    )
    return hs, gates, rec


def gru_reset_after_backward(xs, Wx, Wh, h0, hs, gates, rec, dhs) -> tuple:
    """Backward through time of :func:`gru_reset_after_forward`: (dxs, dWx, dWh, dbx, dbh, dh0)."""
    dtype, a, (N, T, D, H) = _recurrent(
        xs, Wx, Wh, None, 3, "GRU", h0=h0, hs=hs, gates=gates, rec=rec, dhs=dhs
    )
    xp = array_module(a["xs"])
    dxs, dWx, dWh, dbx, dh0 = _recurrent_grads(xp, dtype, N, T, D, H, 3, 1)
    dbh = xp.empty((3 * H,), dtype=dtype)
    kernel("gru_reset_after_backward", dtype, a["xs"])(
        a["xs"],
        a["Wx"],
        a["Wh"],
        a["h0"],
        a["hs"],
        a["gates"],
        a["rec"],
        a["dhs"],
        dxs,
        dWx,
        dWh,
        dbx,
        dbh,
        dh0,
    )
    return dxs, dWx, dWh, dbx, dbh, dh0


# ======================================================================================================
# embedding (gather of table rows, scatter-add backward) and softmax-with-loss over time


def embedding_forward(W, idx):
    """Rows of W (V, D) picked by the integer ids ``idx`` (any shape): ``W[idx]``, of shape idx.shape + (D,)."""
    dtype, arr = chk.floats(half=True, W=W)
    W = arr["W"]
    chk.ndim(W, "W", 2, "(V, D)")
    chk.nonempty(W, "W")
    idx = chk.ids(idx)
    xp = array_module(W)
    out = xp.empty(idx.shape + (W.shape[1],), dtype=dtype)
    flat = xp.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    kernel("embedding_forward", dtype, W)(_c(W, dtype), flat, out.reshape(flat.size, W.shape[1]))
    return out


def embedding_backward(dout, idx, W_shape, out=None):
    """Gradient of :func:`embedding_forward` for the table: zeros of ``W_shape`` (V, D) with every row of ``dout``
    (idx.shape + (D,)) added into the row its id picked (repeated ids accumulate).

    ``out``, when given, is a C-contiguous writeable (V, D) array of dout's dtype that receives the result in place.
    """
    dtype, arr = chk.floats(half=True, dout=dout)
    dout = arr["dout"]
    idx = chk.ids(idx)
    V, D = chk.table_shape(W_shape)
    chk.same_shape(dout, "dout", idx.shape + (D,), f"one row of {D} per id of idx {chk.shape_str(idx.shape)}")
    xp = array_module(dout)
    if out is None:
        out = xp.empty((V, D), dtype=dtype)
    else:
        chk.out_array(out, dtype, (V, D), "W_shape")
    flat = xp.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    kernel("embedding_backward", dtype, dout)(_c(dout, dtype).reshape(flat.size, D), flat, out)
    return out


def time_softmax_ce(xs, ts, ignore_label: int = -1) -> tuple:
    """Softmax of scores xs (N, T, V) and the cross-entropy averaged over the steps whose label is not
    ``ignore_label`` (the sequel's TimeSoftmaxWithLoss).

    Parameters
    ----------
    xs : array_like (N, T, V)
    ts : integer labels (N, T) in [0, V) or equal to ``ignore_label``, or one-hot targets (N, T, V)
    ignore_label : int

    Returns
    -------
    loss : float
        ``sum(-log y[label]) / kept`` over the kept steps (no 1e-7 inside the log, as the sequel); NaN when every
        step is ignored (0 / 0, as the sequel).
    ys : ndarray (N, T, V), the softmax of xs
    labels : ndarray (N, T) int64, the labels used (argmax of one-hot targets)
    kept : int, the number of steps that count
    """
    dtype, arr = chk.floats(half=True, xs=xs)
    xs = arr["xs"]
    chk.ndim(xs, "xs", 3, "(N, T, V)")
    chk.nonempty(xs, "xs")
    ignore = chk.integer(ignore_label, "ignore_label", -(2**63), 2**63 - 1)
    xp = array_module(xs)
    labels = xp.ascontiguousarray(chk.time_targets(ts, xs.shape), dtype=np.int64)
    N, T, V = xs.shape
    ys = xp.empty(xs.shape, dtype=dtype)
    total, kept = kernel("time_softmax_ce_forward", dtype, xs)(_c(xs, dtype).reshape(N * T, V), labels.reshape(-1),
                                                               ys.reshape(N * T, V), ignore)
    loss = total / kept if kept else float("nan")
    return loss, ys, labels, kept


def time_softmax_ce_backward(ys, labels, kept: int, dout: float = 1.0, ignore_label: int = -1):
    """Gradient of :func:`time_softmax_ce` for the scores: ``(ys - onehot(labels)) * dout / kept`` on the kept
    steps, 0 on the ignored ones."""
    dtype, arr = chk.floats(half=True, ys=ys)
    ys = arr["ys"]
    chk.ndim(ys, "ys", 3, "(N, T, V)")
    chk.nonempty(ys, "ys")
    labels = chk.time_targets(labels, ys.shape)
    ignore = chk.integer(ignore_label, "ignore_label", -(2**63), 2**63 - 1)
    kept = chk.integer(kept, "kept", 0)
    scale = chk.real(dout, "dout") / kept if kept else float("nan")
    N, T, V = ys.shape
    xp = array_module(ys)
    dx = xp.empty(ys.shape, dtype=dtype)
    kernel("time_softmax_ce_backward", dtype, ys)(_c(ys, dtype).reshape(N * T, V),
                                                  xp.ascontiguousarray(labels, dtype=np.int64).reshape(-1),
                                                  dx.reshape(N * T, V), ignore, scale)
    return dx


__all__ += [
    "embedding_backward",
    "embedding_forward",
    "gru_backward",
    "gru_forward",
    "gru_reset_after_backward",
    "gru_reset_after_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "time_softmax_ce",
    "time_softmax_ce_backward",
]


# ======================================================================================================
# dot-product attention (the sequel's ch08 WeightSum, AttentionWeight, TimeAttention): encoder states hs
# (N, S, H), a decoder state h (N, H) or decoder states hs_dec (N, L, H)


def _attention_args(hs_name, hs, other_name, other, layout, **more):
    dtype, arr = chk.floats(half=True, **{hs_name: hs, other_name: other}, **more)
    N, S, H = chk.attention_shapes(arr[hs_name], hs_name, arr[other_name], other_name, layout)
    return dtype, {k: _c(a, dtype) for k, a in arr.items()}, (N, S, H)


def weight_sum_forward(hs, a):
    """Context ``c[n] = sum_s a[n, s] * hs[n, s]`` (N, H) of hs (N, S, H) under weights a (N, S)."""
    dtype, x, (N, _, H) = _attention_args("hs", hs, "a", a, "(N, S)")
    c = array_module(x["hs"]).empty((N, H), dtype=dtype)
    kernel("weight_sum_forward", dtype, x["hs"])(x["hs"], x["a"], c)
    return c


def weight_sum_backward(hs, a, dc) -> tuple:
    """Gradients (dhs, da) of :func:`weight_sum_forward` for the gradient dc (N, H) of the context."""
    dtype, x, (N, S, H) = _attention_args("hs", hs, "a", a, "(N, S)", dc=dc)
    chk.same_shape(x["dc"], "dc", (N, H), "the shape of the context")
    xp = array_module(x["hs"])
    dhs, da = xp.empty((N, S, H), dtype=dtype), xp.empty((N, S), dtype=dtype)
    kernel("weight_sum_backward", dtype, x["hs"])(x["hs"], x["a"], x["dc"], dhs, da)
    return dhs, da


def attention_weight_forward(hs, h):
    """Attention weights ``a[n] = softmax_s(hs[n, s] . h[n])`` (N, S) of hs (N, S, H) for h (N, H)."""
    dtype, x, (N, S, _) = _attention_args("hs", hs, "h", h, "(N, H)")
    a = array_module(x["hs"]).empty((N, S), dtype=dtype)
    kernel("attention_weight_forward", dtype, x["hs"])(x["hs"], x["h"], a)
    return a


def attention_weight_backward(hs, h, a, da) -> tuple:
    """Gradients (dhs, dh) of :func:`attention_weight_forward` (whose output is ``a``) for the gradient da."""
    dtype, x, (N, S, H) = _attention_args("hs", hs, "h", h, "(N, H)", a=a, da=da)
    for name in ("a", "da"):
        chk.same_shape(x[name], name, (N, S), "the shape of the attention weights")
    xp = array_module(x["hs"])
    dhs, dh = xp.empty((N, S, H), dtype=dtype), xp.empty((N, H), dtype=dtype)
    kernel("attention_weight_backward", dtype, x["hs"])(x["hs"], x["h"], x["a"], x["da"], dhs, dh)
    return dhs, dh


def attention_forward(hs_enc, hs_dec) -> tuple:
    """Attention of every decoder step over the encoder states.

    Returns
    -------
    out : ndarray (N, L, H)
        ``a[n] @ hs_enc[n]``, the context of each decoder step.
    a : ndarray (N, L, S)
        ``softmax(hs_dec[n] @ hs_enc[n].T)``, the weights (kept for :func:`attention_backward`).
    """
    dtype, x, (N, S, H) = _attention_args("hs_enc", hs_enc, "hs_dec", hs_dec, "(N, L, H)")
    L = x["hs_dec"].shape[1]
    xp = array_module(x["hs_enc"])
    out, a = xp.empty((N, L, H), dtype=dtype), xp.empty((N, L, S), dtype=dtype)
    kernel("attention_forward", dtype, x["hs_enc"])(x["hs_enc"], x["hs_dec"], a, out)
    return out, a


def attention_backward(hs_enc, hs_dec, a, dout) -> tuple:
    """Gradients (dhs_enc, dhs_dec) of :func:`attention_forward` for the gradient dout (N, L, H) of its output."""
    dtype, x, (N, S, H) = _attention_args("hs_enc", hs_enc, "hs_dec", hs_dec, "(N, L, H)", a=a, dout=dout)
    L = x["hs_dec"].shape[1]
    chk.same_shape(x["a"], "a", (N, L, S), "the shape of the attention weights")
    chk.same_shape(x["dout"], "dout", (N, L, H), "the shape of the forward output")
    xp = array_module(x["hs_enc"])
    dhs_enc, dhs_dec = xp.empty((N, S, H), dtype=dtype), xp.empty((N, L, H), dtype=dtype)
    kernel("attention_backward", dtype, x["hs_enc"])(x["hs_enc"], x["hs_dec"], x["a"], x["dout"], dhs_enc, dhs_dec)
    return dhs_enc, dhs_dec


__all__ += [
    "attention_backward",
    "attention_forward",
    "attention_weight_backward",
    "attention_weight_forward",
    "weight_sum_backward",
    "weight_sum_forward",
]


# ======================================================================================================
# layer normalisation over the last axis (Keras' LayerNormalization, torch.nn.LayerNorm)


def layernorm_forward(x, gamma, beta, eps: float = 1e-5) -> tuple:
    """Layer normalisation of x (..., D) over its last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``, with
    each row's mean and biased variance.

    Returns
    -------
    out : ndarray of x's shape
    mean, rstd : ndarray (M,)
        Each row's mean and ``1 / sqrt(var + eps)``, M = x.size // D (kept for :func:`layernorm_backward`).
    """
    dtype, arr = chk.floats(half=True, x=x, gamma=gamma, beta=beta)
    x = arr["x"]
    x2 = _c(chk.last_axis_rows(x, "x"), dtype)
    M, D = x2.shape
    for name in ("gamma", "beta"):
        chk.same_shape(arr[name], name, (D,), f"one per feature of x {chk.shape_str(x.shape)}")
    xp = array_module(x)
    out, mean, rstd = xp.empty((M, D), dtype=dtype), xp.empty((M,), dtype=dtype), xp.empty((M,), dtype=dtype)
    kernel("layernorm_forward", dtype, x)(x2, _c(arr["gamma"], dtype), _c(arr["beta"], dtype), out, mean, rstd,
                                          chk.eps(eps))
    return out.reshape(x.shape), mean, rstd


def layernorm_backward(x, gamma, mean, rstd, dout) -> tuple:
    """Gradients (dx, dgamma, dbeta) of :func:`layernorm_forward` for the gradient dout of its output."""
    dtype, arr = chk.floats(half=True, x=x, gamma=gamma, mean=mean, rstd=rstd, dout=dout)
    x = arr["x"]
    x2 = _c(chk.last_axis_rows(x, "x"), dtype)
    M, D = x2.shape
    chk.same_shape(arr["gamma"], "gamma", (D,), f"one per feature of x {chk.shape_str(x.shape)}")
    for name in ("mean", "rstd"):
        chk.same_shape(arr[name], name, (M,), "one per row of x")
    chk.same_shape(arr["dout"], "dout", x.shape, "the shape of x")
    xp = array_module(x)
    dx, dgamma, dbeta = xp.empty((M, D), dtype=dtype), xp.empty((D,), dtype=dtype), xp.empty((D,), dtype=dtype)
    kernel("layernorm_backward", dtype, x)(x2, _c(arr["gamma"], dtype), _c(arr["mean"], dtype),
                                           _c(arr["rstd"], dtype), _c(arr["dout"], dtype).reshape(M, D), dx, dgamma,
                                           dbeta)
    return dx.reshape(x.shape), dgamma, dbeta


__all__ += ["layernorm_backward", "layernorm_forward"]


# ======================================================================================================
# scaled dot-product attention of many heads (Keras' MultiHeadAttention, torch.nn.MultiheadAttention): queries
# q (B, L, E), keys k (B, S, E), values v (B, S, F), B = batch * heads


def _sdpa_args(q, k, v, scale, mask, **more):
    dtype, arr = chk.floats(half=True, q=q, k=k, v=v, **more, **({} if mask is None else {"mask": mask}))
    dims = chk.sdpa_shapes(arr["q"], arr["k"], arr["v"])
    B, L, S = dims[:3]
    for name in ("p", "mask"):
        if name in arr:
            chk.same_shape(arr[name], name, (B, L, S), "one weight per query and key of each head")
    return dtype, {n: _c(a, dtype) for n, a in arr.items()}, dims, chk.real(scale, "scale")


def sdpa_forward(q, k, v, scale: float, mask=None) -> tuple:
    """Scaled dot-product attention of every head: ``p = softmax(scale * q @ k^T)`` over the keys,
    ``out = p @ v``, or ``(p * mask) @ v`` with ``mask`` (B, L, S) the attention dropout's factors.

    Returns
    -------
    out : ndarray (B, L, F)
    p : ndarray (B, L, S), the attention weights before dropout (kept for :func:`sdpa_backward`)
    """
    dtype, a, (B, L, S, _, F), scale = _sdpa_args(q, k, v, scale, mask)
    xp = array_module(a["q"])
    out, p = xp.empty((B, L, F), dtype=dtype), xp.empty((B, L, S), dtype=dtype)
    kernel("sdpa_forward", dtype, a["q"])(a["q"], a["k"], a["v"], a.get("mask"), p, out, scale)
    return out, p


def sdpa_backward(q, k, v, p, dout, scale: float, mask=None) -> tuple:
    """Gradients (dq, dk, dv) of :func:`sdpa_forward` (whose weights are ``p``) for the gradient dout (B, L,
    F)."""
    dtype, a, (B, L, S, E, F), scale = _sdpa_args(q, k, v, scale, mask, p=p, dout=dout)
    chk.same_shape(a["dout"], "dout", (B, L, F), "the shape of the forward output")
    xp = array_module(a["q"])
    dq, dk, dv = (
        xp.empty((B, L, E), dtype=dtype),
        xp.empty((B, S, E), dtype=dtype),
        xp.empty((B, S, F), dtype=dtype),
    )
    kernel("sdpa_backward", dtype, a["q"])(
        a["q"], a["k"], a["v"], a["p"], a.get("mask"), a["dout"], dq, dk, dv, scale
    )
    return dq, dk, dv


__all__ += ["sdpa_backward", "sdpa_forward"]
