"""The one module that validates arrays and calls the compiled kernels.

Every public function here checks its arguments (type, dtype, ndim, shapes, scalar ranges) and raises a
``TypeError`` or ``ValueError`` whose message names the argument, the shape seen and the shape expected.
Arrays are then made C-contiguous in the result dtype (``np.result_type`` of the float inputs, float32 or
float64) -- a copy only when needed -- outputs are allocated here, and the kernel runs with the GIL released.
Layers (``fastconv.layers``) call only this module.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ._backend import CUDA_REASON, _cpu

__all__ = [
    "as_array",
    "check_labels",
    "gemm",
    "im2col",
    "col2im",
    "conv_forward",
    "conv_backward",
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
]

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# Largest element count any array may have; sizes are checked against it before anything is allocated.
_MAX_ELEMENTS = 2**62 // 8


# ======================================================================================================
# validation helpers


def _shape(s) -> str:
    return str(tuple(int(v) for v in s))


def _array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray (no copy for ndarrays), or a TypeError naming ``name``."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"{name}: CUDA arrays are not supported by this build ({CUDA_REASON})")
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    try:
        a = np.asarray(x)
    except Exception as exc:  # e.g. ragged nested lists
        raise TypeError(f"{name}: cannot convert {type(x).__name__} to an array ({exc})") from exc
    return a


def as_array(x, name: str = "x") -> np.ndarray:
    """``x`` as an ndarray (no copy for ndarrays); a TypeError naming ``name`` if it cannot be one."""
    return _array(x, name)


def _check_float(a: np.ndarray, name: str) -> None:
    if a.dtype.newbyteorder("=") not in _SUFFIX:  # non-native byte order is converted by _c, as NumPy would
        hint = ""
        if a.dtype.kind in "iub":
            hint = f"; convert it first, e.g. {name}.astype(np.float32)"
        elif a.dtype == np.float16:
            hint = "; float16 kernels are not available yet, use float32"
        raise TypeError(f"{name}: dtype {a.dtype} is not supported, expected float32 or float64{hint}")


def _floats(**named) -> tuple[np.dtype, dict[str, np.ndarray]]:
    """Arrays of a float dtype, and their common result dtype (np.result_type)."""
    arrays = {}
    for name, x in named.items():
        a = _array(x, name)
        _check_float(a, name)
        arrays[name] = a
    return np.result_type(*arrays.values()).newbyteorder("="), arrays


def _c(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C-contiguous array of ``dtype``; copies only when needed (non-contiguous, sliced, Fortran, other dtype).
    Keeps the shape of 0-D arrays (np.ascontiguousarray returns them as 1-D)."""
    r = np.ascontiguousarray(a, dtype=dtype)
    return r.reshape(a.shape) if r.ndim != a.ndim else r


def _kernel(name: str, dtype: np.dtype):
    return getattr(_cpu, f"{name}_{_SUFFIX[np.dtype(dtype)]}")


def _ndim(a: np.ndarray, name: str, ndim: int, layout: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {_shape(a.shape)}")


def _nonempty(a: np.ndarray, name: str) -> None:
    if a.size == 0:
        raise ValueError(f"{name}: empty array (shape {_shape(a.shape)}); every dimension must be >= 1")


def _same_shape(a: np.ndarray, name: str, expected, expected_from: str) -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name}: shape {_shape(a.shape)}, expected {_shape(expected)} ({expected_from})")


# Window parameters (filter and pool sizes, stride, pad) above this are rejected, as in the C++ bindings.
_MAX_WINDOW_PARAM = 2**40


def _int(v, name: str, minimum: int, maximum: float = _MAX_WINDOW_PARAM) -> int:
    """A Python int in [minimum, maximum] (NumPy integers accepted; bool and float rejected)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, got bool")
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}") from None
    if i < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {i}")
    if i > maximum:
        raise ValueError(f"{name} is too large: {i} (limit {maximum})")
    return i


def _float(v, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
    return float(v)


def _check_elements(name: str, *dims: int, culprit: str | None = None) -> None:
    """Reject an array of ``name`` whose element count would exceed _MAX_ELEMENTS; the message starts with the
    argument that made it large (``culprit``), defaulting to ``name``."""
    total = math.prod(int(d) for d in dims)
    if total > _MAX_ELEMENTS:
        raise ValueError(f"{culprit or name}: the {name} array would have {total} elements, too large "
                         f"(sizes {_shape(dims)})")


def _size_culprit(H: int, W: int, pad: int, array_name: str) -> str:
    """Which argument to blame for an oversized window output: the pad when it dwarfs the input, else the input."""
    return "pad" if 2 * pad > max(H, W) else array_name


def _window(H: int, W: int, fh: int, fw: int, stride: int, pad: int, what: str, x_name: str, x_shape) -> tuple:
    """Output size of a sliding window, or a ValueError if the window does not fit the padded input."""
    if H + 2 * pad < fh or W + 2 * pad < fw:
        raise ValueError(
            f"{what} {fh}x{fw} is larger than the padded input {H + 2 * pad}x{W + 2 * pad} "
            f"({x_name} shape {_shape(x_shape)}, pad={pad})"
        )
    return (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1


def check_labels(t, n_classes: int, name: str = "t") -> None:
    """Integer labels in [0, n_classes), or a ValueError naming ``name``, the first bad label and its index."""
    t = np.asarray(t)
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        flat = t.reshape(-1)
        i = int(np.flatnonzero((flat < 0) | (flat >= n_classes))[0])
        raise ValueError(f"{name}: label {flat[i]} at index {i} is out of range [0, {n_classes})")


def _labels(t, name: str, n: int) -> np.ndarray:
    """Integer labels of shape (n,) as int64 (range is checked by the kernel, which never trusts an index)."""
    if t.dtype.kind == "b" or t.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: labels must be integers, got dtype {t.dtype}; pass one-hot targets with the shape of x instead"
        )
    if t.shape != (n,):
        raise ValueError(f"{name}: shape {_shape(t.shape)}, expected ({n},) labels or one-hot targets of x's shape")
    return np.ascontiguousarray(t, dtype=np.int64)


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
    dtype, arr = _floats(a=a, b=b)
    a, b = arr["a"], arr["b"]
    _ndim(a, "a", 2, "(M, K)")
    _ndim(b, "b", 2, "(K, N)")
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if K != Kb:
        raise ValueError(
            f"b: shape {_shape(b.shape)} does not match a: shape {_shape(a.shape)} "
            f"(op(a) is {M}x{K}, op(b) is {Kb}x{N})"
        )
    alpha, beta = _float(alpha, "alpha"), _float(beta, "beta")
    if out is None:
        if beta != 0.0:
            raise ValueError("out: beta != 0 needs an out array to accumulate into")
        out = np.empty((M, N), dtype=dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected an ndarray, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"out: dtype {out.dtype}, expected {dtype} (the result dtype of a and b)")
        _same_shape(out, "out", (M, N), "op(a) @ op(b)")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out: must be a writeable C-contiguous array")
    a, b = _c(a, dtype), _c(b, dtype)
    # the kernel writes out while it still reads a and b block by block: an operand that overlaps out is
    # copied first (as np.matmul does), otherwise later blocks would read already-overwritten values
    if np.may_share_memory(a, out):
        a = a.copy()
    if np.may_share_memory(b, out):
        b = b.copy()
    _kernel("gemm", dtype)(a, b, out, bool(trans_a), bool(trans_b), alpha, beta)
    return out


# ======================================================================================================
# im2col / col2im (book layout)


def _conv_args(stride, pad) -> tuple[int, int]:
    return _int(stride, "stride", 1), _int(pad, "pad", 0)


def im2col(input_data, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Unfold (N, C, H, W) into the book's column matrix (N*OH*OW, C*FH*FW); dtype follows the input."""
    dtype, arr = _floats(input_data=input_data)
    x = arr["input_data"]
    _ndim(x, "input_data", 4, "(N, C, H, W)")
    _nonempty(x, "input_data")
    fh, fw = _int(filter_h, "filter_h", 1), _int(filter_w, "filter_w", 1)
    stride, pad = _conv_args(stride, pad)
    N, C, H, W = x.shape
    OH, OW = _window(H, W, fh, fw, stride, pad, "filter", "input_data", x.shape)
    _check_elements("col", N, OH, OW, C, fh, fw, culprit=_size_culprit(H, W, pad, "input_data"))
    col = np.empty((N * OH * OW, C * fh * fw), dtype=dtype)
    _kernel("im2col", dtype)(_c(x, dtype), col, fh, fw, stride, pad)
    return col


def col2im(col, input_shape, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add the column matrix back into an array of ``input_shape``."""
    dtype, arr = _floats(col=col)
    col = arr["col"]
    try:
        shape = tuple(_int(s, "input_shape", 1) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape: expected a sequence of 4 ints, got {input_shape!r}") from None
    if len(shape) != 4:
        raise ValueError(f"input_shape: expected (N, C, H, W), got {input_shape!r}")
    fh, fw = _int(filter_h, "filter_h", 1), _int(filter_w, "filter_w", 1)
    stride, pad = _conv_args(stride, pad)
    N, C, H, W = shape
    OH, OW = _window(H, W, fh, fw, stride, pad, "filter", "input_shape", shape)
    _check_elements("x", N, C, H, W, culprit="input_shape")
    _check_elements("col", N, OH, OW, C, fh, fw, culprit=_size_culprit(H, W, pad, "input_shape"))
    _ndim(col, "col", 2, "(N*OH*OW, C*FH*FW)")
    _same_shape(col, "col", (N * OH * OW, C * fh * fw), f"input_shape {_shape(shape)}, filter {fh}x{fw}")
    x = np.empty(shape, dtype=dtype)
    _kernel("col2im", dtype)(_c(col, dtype), x, fh, fw, stride, pad)
    return x


# ======================================================================================================
# convolution


def _conv_shapes(x: np.ndarray, W: np.ndarray, stride: int, pad: int) -> tuple[int, int]:
    _ndim(x, "x", 4, "(N, C, H, W)")
    _ndim(W, "W", 4, "(FN, C, FH, FW)")
    _nonempty(x, "x")
    _nonempty(W, "W")
    if W.shape[1] != x.shape[1]:
        raise ValueError(
            f"W: shape {_shape(W.shape)} expects {W.shape[1]} input channels, "
            f"but x: shape {_shape(x.shape)} has {x.shape[1]}"
        )
    OH, OW = _window(x.shape[2], x.shape[3], W.shape[2], W.shape[3], stride, pad, "filter", "x", x.shape)
    culprit = _size_culprit(x.shape[2], x.shape[3], pad, "x")
    _check_elements("out", x.shape[0], W.shape[0], OH, OW, culprit=culprit)
    _check_elements("columns", OH, OW, W.shape[1], W.shape[2], W.shape[3], culprit=culprit)
    return OH, OW


def conv_forward(x, W, b, stride: int = 1, pad: int = 0, *, relu: bool = False) -> np.ndarray:
    """Convolution (cross-correlation) of x (N, C, H, W) with W (FN, C, FH, FW) plus b (FN,).

    With ``relu=True`` the result is ``relu_forward`` of it, applied as the kernel writes its output (no pass
    over memory of its own; bit for bit the two calls' result).

    Returns
    -------
    ndarray (N, FN, OH, OW) of the result dtype of x, W and b.
    """
    dtype, arr = _floats(x=x, W=W, b=b)
    x, W, b = arr["x"], arr["W"], arr["b"]
    stride, pad = _conv_args(stride, pad)
    OH, OW = _conv_shapes(x, W, stride, pad)
    _same_shape(b, "b", (W.shape[0],), f"one bias per filter of W {_shape(W.shape)}")
    out = np.empty((x.shape[0], W.shape[0], OH, OW), dtype=dtype)
    _kernel("conv_forward", dtype)(_c(x, dtype), _c(W, dtype), _c(b, dtype), out, stride, pad, bool(relu))
    return out


def conv_backward(x, W, dout, stride: int = 1, pad: int = 0, *,
                  need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of :func:`conv_forward` given ``dout`` (N, FN, OH, OW).

    With ``need_dx=False`` the input gradient is not computed (``dx`` is None); dW and db are the same bits.
    """
    dtype, arr = _floats(x=x, W=W, dout=dout)
    x, W, dout = arr["x"], arr["W"], arr["dout"]
    stride, pad = _conv_args(stride, pad)
    OH, OW = _conv_shapes(x, W, stride, pad)
    _same_shape(dout, "dout", (x.shape[0], W.shape[0], OH, OW), "the shape of the forward output")
    dx = np.empty(x.shape, dtype=dtype) if need_dx else None
    dW = np.empty(W.shape, dtype=dtype)
    db = np.empty((W.shape[0],), dtype=dtype)
    _kernel("conv_backward", dtype)(_c(x, dtype), _c(W, dtype), _c(dout, dtype), dx, dW, db, stride, pad)
    return dx, dW, db


# ======================================================================================================
# pooling


def _pool_args(x: np.ndarray, pool_h, pool_w, stride, pad) -> tuple[int, int, int, int, int, int]:
    _ndim(x, "x", 4, "(N, C, H, W)")
    _nonempty(x, "x")
    ph, pw = _int(pool_h, "pool_h", 1), _int(pool_w, "pool_w", 1)
    stride, pad = _conv_args(stride, pad)
    if pad >= ph or pad >= pw:
        raise ValueError(f"pad must be smaller than the pool window {ph}x{pw}, got pad={pad}")
    OH, OW = _window(x.shape[2], x.shape[3], ph, pw, stride, pad, "pool window", "x", x.shape)
    _check_elements("out", x.shape[0], x.shape[1], OH, OW, culprit=_size_culprit(x.shape[2], x.shape[3], pad, "x"))
    if x.shape[2] * x.shape[3] >= 2**31:
        raise ValueError(f"x: image plane {x.shape[2]}x{x.shape[3]} is too large for pooling (>= 2**31 pixels)")
    return ph, pw, stride, pad, OH, OW


def _pool_grad_shape(dout: np.ndarray, x_shape, pool_h, pool_w, stride, pad):
    try:
        shape = tuple(_int(s, "x_shape", 1) for s in x_shape)
    except TypeError:
        raise TypeError(f"x_shape: expected a sequence of 4 ints, got {x_shape!r}") from None
    if len(shape) != 4:
        raise ValueError(f"x_shape: expected (N, C, H, W), got {x_shape!r}")
    _check_elements("dx", *shape, culprit="x_shape")
    ph, pw, stride, pad, OH, OW = _pool_args(_Shape(shape), pool_h, pool_w, stride, pad)
    _same_shape(dout, "dout", (shape[0], shape[1], OH, OW), "the shape of the forward output")
    return shape, ph, pw, stride, pad


class _Shape:
    """Stand-in with the ndim/shape/size of an array that need not exist (for shape-only checks)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.size = math.prod(shape)  # Python ints: np.prod would wrap around in int64


def maxpool_forward(x, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling; padding never wins. Returns (out, argmax) with argmax the int32 index ih*W+iw in each plane."""
    dtype, arr = _floats(x=x)
    x = arr["x"]
    ph, pw, stride, pad, OH, OW = _pool_args(x, pool_h, pool_w, stride, pad)
    out = np.empty((x.shape[0], x.shape[1], OH, OW), dtype=dtype)
    argmax = np.empty(out.shape, dtype=np.int32)
    _kernel("maxpool_forward", dtype)(_c(x, dtype), out, argmax, ph, pw, stride, pad)
    return out, argmax


def maxpool_backward(dout, argmax, x_shape, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> np.ndarray:
    """Gradient of :func:`maxpool_forward`: routes each dout to its argmax position."""
    dtype, arr = _floats(dout=dout)
    dout = arr["dout"]
    _ndim(dout, "dout", 4, "(N, C, OH, OW)")
    shape, ph, pw, stride, pad = _pool_grad_shape(dout, x_shape, pool_h, pool_w, stride, pad)
    argmax = _array(argmax, "argmax")
    if argmax.dtype.kind not in "iu" or argmax.dtype.kind == "b":
        raise TypeError(f"argmax: expected an integer array, got dtype {argmax.dtype}")
    _same_shape(argmax, "argmax", dout.shape, "the shape of dout")
    if argmax.dtype != np.int32 and argmax.size:
        # a narrowing cast could wrap a bad index into a valid one; the kernel checks int32 values itself
        lo, hi = int(argmax.min()), int(argmax.max())
        if lo < 0 or hi >= shape[2] * shape[3]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"argmax: value {bad} is out of range [0, {shape[2] * shape[3]})")
    dx = np.empty(shape, dtype=dtype)
    _kernel("maxpool_backward", dtype)(_c(dout, dtype), np.ascontiguousarray(argmax, dtype=np.int32), dx, ph, pw,
                                       stride, pad)
    return dx


def avgpool_forward(x, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> np.ndarray:
    """Average pooling; padded positions count as zeros (divide by pool_h*pool_w)."""
    dtype, arr = _floats(x=x)
    x = arr["x"]
    ph, pw, stride, pad, OH, OW = _pool_args(x, pool_h, pool_w, stride, pad)
    out = np.empty((x.shape[0], x.shape[1], OH, OW), dtype=dtype)
    _kernel("avgpool_forward", dtype)(_c(x, dtype), out, ph, pw, stride, pad)
    return out


def avgpool_backward(dout, x_shape, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> np.ndarray:
    """Gradient of :func:`avgpool_forward`."""
    dtype, arr = _floats(dout=dout)
    dout = arr["dout"]
    _ndim(dout, "dout", 4, "(N, C, OH, OW)")
    shape, ph, pw, stride, pad = _pool_grad_shape(dout, x_shape, pool_h, pool_w, stride, pad)
    dx = np.empty(shape, dtype=dtype)
    _kernel("avgpool_backward", dtype)(_c(dout, dtype), dx, ph, pw, stride, pad)
    return dx


# ======================================================================================================
# element-wise activations (any shape)


def _unary(name: str, x, x_name: str = "x") -> np.ndarray:
    dtype, arr = _floats(**{x_name: x})
    x = _c(arr[x_name], dtype)
    out = np.empty(x.shape, dtype=dtype)
    if x.size:
        _kernel(name, dtype)(x.reshape(-1), out.reshape(-1))
    return out


def _binary(name: str, dout, out) -> np.ndarray:
    dtype, arr = _floats(dout=dout, out=out)
    dout, out = arr["dout"], arr["out"]
    _same_shape(dout, "dout", out.shape, "the shape of the forward output")
    dout, out = _c(dout, dtype), _c(out, dtype)
    dx = np.empty(out.shape, dtype=dtype)
    if dx.size:
        _kernel(name, dtype)(dout.reshape(-1), out.reshape(-1), dx.reshape(-1))
    return dx


def relu_forward(x) -> np.ndarray:
    """max(x, 0) elementwise (NaN propagates)."""
    return _unary("relu_forward", x)


def relu_backward(dout, out) -> np.ndarray:
    """dout where the forward output ``out`` is > 0 (or NaN), else 0."""
    return _binary("relu_backward", dout, out)


def sigmoid_forward(x) -> np.ndarray:
    """1 / (1 + exp(-x)) elementwise, in a form that never overflows."""
    return _unary("sigmoid_forward", x)


def sigmoid_backward(dout, out) -> np.ndarray:
    """dout * (1 - out) * out, with ``out`` the forward output."""
    return _binary("sigmoid_backward", dout, out)


# ======================================================================================================
# affine


def _affine_shapes(x: np.ndarray, W: np.ndarray) -> None:
    _ndim(x, "x", 2, "(N, D)")
    _ndim(W, "W", 2, "(D, H)")
    _nonempty(x, "x")
    _nonempty(W, "W")
    if x.shape[1] != W.shape[0]:
        raise ValueError(
            f"W: shape {_shape(W.shape)} expects {W.shape[0]} input features, "
            f"but x: shape {_shape(x.shape)} has {x.shape[1]}"
        )


def affine_forward(x, W, b) -> np.ndarray:
    """x (N, D) @ W (D, H) + b (H,)."""
    dtype, arr = _floats(x=x, W=W, b=b)
    x, W, b = arr["x"], arr["W"], arr["b"]
    _affine_shapes(x, W)
    _same_shape(b, "b", (W.shape[1],), f"one bias per output of W {_shape(W.shape)}")
    out = np.empty((x.shape[0], W.shape[1]), dtype=dtype)
    _kernel("affine_forward", dtype)(_c(x, dtype), _c(W, dtype), _c(b, dtype), out)
    return out


def affine_backward(x, W, dout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of :func:`affine_forward`."""
    dtype, arr = _floats(x=x, W=W, dout=dout)
    x, W, dout = arr["x"], arr["W"], arr["dout"]
    _affine_shapes(x, W)
    _same_shape(dout, "dout", (x.shape[0], W.shape[1]), "the shape of the forward output")
    dx = np.empty(x.shape, dtype=dtype)
    dW = np.empty(W.shape, dtype=dtype)
    db = np.empty((W.shape[1],), dtype=dtype)
    _kernel("affine_backward", dtype)(_c(x, dtype), _c(W, dtype), _c(dout, dtype), dx, dW, db)
    return dx, dW, db


# ======================================================================================================
# softmax and cross-entropy


def _rows(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D (K,) or 2-D (N, K) array, got shape {_shape(x.shape)}")
    _nonempty(x, name)
    return x.reshape(1, -1) if x.ndim == 1 else x


def softmax(x) -> np.ndarray:
    """Row-wise softmax of a 1-D or 2-D array (max subtracted first)."""
    dtype, arr = _floats(x=x)
    x = arr["x"]
    x2 = _c(_rows(x, "x"), dtype)
    y = np.empty(x2.shape, dtype=dtype)
    _kernel("softmax_forward", dtype)(x2, y)
    return y.reshape(x.shape)


def _targets(t, x2: np.ndarray, x_shape, dtype) -> tuple[np.ndarray, bool]:
    """(targets, is_labels): int64 labels (N,) or dense targets (N, K) of ``dtype``."""
    t = _array(t, "t")
    n, k = x2.shape
    if t.shape in (tuple(x_shape), x2.shape) and t.dtype.kind in "fiub":
        # dense (one-hot or probability) targets of x's shape, any real dtype; they take x's dtype (as the
        # book: t.size == y.size means one-hot, also for a single class)
        if t.dtype.kind == "f":
            _check_float(t, "t")
        return _c(t.reshape(n, k), dtype), False
    if t.ndim == 0 and n == 1:
        t = t.reshape(1)
    if t.dtype.kind == "f":
        raise TypeError(
            f"t: float targets must have the shape of x {_shape(x_shape)} (one-hot), got {_shape(t.shape)}; "
            "labels must be integers"
        )
    return _labels(t, "t", n), True


def softmax_cross_entropy(x, t) -> tuple[float, np.ndarray]:
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
    dtype, arr = _floats(x=x)
    x = arr["x"]
    x2 = _c(_rows(x, "x"), dtype)
    tt, labels = _targets(t, x2, x.shape, dtype)
    y = np.empty(x2.shape, dtype=dtype)
    name = "softmax_ce_forward_labels" if labels else "softmax_ce_forward_dense"
    loss = _kernel(name, dtype)(x2, tt, y)
    return float(loss), y.reshape(x.shape)


def softmax_cross_entropy_backward(y, t, dout: float = 1.0) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` with respect to the scores: (y - onehot(t)) / N * dout."""
    dtype, arr = _floats(y=y)
    y = arr["y"]
    y2 = _c(_rows(y, "y"), dtype)
    tt, labels = _targets(t, y2, y.shape, dtype)
    dout = _float(dout, "dout")
    dx = np.empty(y2.shape, dtype=dtype)
    name = "softmax_ce_backward_labels" if labels else "softmax_ce_backward_dense"
    _kernel(name, dtype)(y2, tt, dx, dout)
    return dx.reshape(y.shape)


# ======================================================================================================
# dropout


def _ratio(ratio) -> float:
    r = _float(ratio, "dropout_ratio")
    if not 0.0 <= r < 1.0:
        raise ValueError(f"dropout_ratio must be in [0, 1), got {r}")
    return r


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2**64), or a TypeError / ValueError naming it."""
    i = _int(seed, "seed", 0, maximum=math.inf)
    if i >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {i}")
    return i


def dropout_forward(x, dropout_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-mode dropout: keeps each element with probability 1 - ratio. Returns (out, bool mask).

    The mask comes from a counter-based generator keyed by ``seed``: the same seed gives the same mask
    whatever the thread count.
    """
    dtype, arr = _floats(x=x)
    x = _c(arr["x"], dtype)
    r = _ratio(dropout_ratio)
    seed = check_seed(seed)
    out = np.empty(x.shape, dtype=dtype)
    mask = np.empty(x.shape, dtype=np.bool_)
    if x.size:
        _kernel("dropout_forward", dtype)(x.reshape(-1), out.reshape(-1), mask.reshape(-1), r, seed)
    return out, mask


def dropout_infer(x, dropout_ratio: float) -> np.ndarray:
    """Inference-mode dropout: x * (1 - ratio), dtype preserved."""
    dtype, arr = _floats(x=x)
    r = _ratio(dropout_ratio)
    return arr["x"] * dtype.type(1.0 - r)


def dropout_backward(dout, mask) -> np.ndarray:
    """dout * mask."""
    dtype, arr = _floats(dout=dout)
    dout = _c(arr["dout"], dtype)
    mask = _array(mask, "mask")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
    _same_shape(mask, "mask", dout.shape, "the shape of dout")
    mask = np.ascontiguousarray(mask)
    dx = np.empty(dout.shape, dtype=dtype)
    if dx.size:
        _kernel("dropout_backward", dtype)(dout.reshape(-1), mask.reshape(-1), dx.reshape(-1))
    return dx


# ======================================================================================================
# batch normalization (2-D: per-column statistics)


def _bn_params(x: np.ndarray, dtype, x_name: str = "x", **params) -> dict[str, np.ndarray]:
    d = x.shape[1]
    out = {}
    for name, p in params.items():
        p = _array(p, name)
        _check_float(p, name)
        if p.size != d:
            raise ValueError(f"{name}: shape {_shape(p.shape)} has {p.size} elements, expected {d} ({x_name} has "
                             f"shape {_shape(x.shape)})")
        out[name] = _c(p.reshape(d), dtype)
    return out


def _bn_x(x, name: str = "x"):
    dtype, arr = _floats(**{name: x})
    x = arr[name]
    _ndim(x, name, 2, "(N, D)")
    _nonempty(x, name)
    return dtype, _c(x, dtype)


def _eps(eps) -> float:
    e = _float(eps, "eps")
    if not e > 0.0:
        raise ValueError(f"eps must be > 0, got {e}")
    return e


def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum: float = 0.9, eps: float = 1e-6):
    """Training-mode batch normalization of x (N, D) over the batch; updates running_mean/var in place.

    Returns
    -------
    out, xc, xn : ndarray (N, D)
    std : ndarray (D,)
    """
    dtype, x = _bn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta)
    rm, rv = (_array(running_mean, "running_mean"), _array(running_var, "running_var"))
    for name, arr in (("running_mean", rm), ("running_var", rv)):
        if not arr.flags.writeable:
            raise ValueError(f"{name}: array is read-only (training mode updates it in place)")
    stats = _bn_params(x, dtype, running_mean=rm, running_var=rv)
    momentum, eps = _float(momentum, "momentum"), _eps(eps)
    n, d = x.shape
    out, xc, xn = (np.empty((n, d), dtype=dtype) for _ in range(3))
    std = np.empty((d,), dtype=dtype)
    _kernel("batchnorm_forward_train", dtype)(x, p["gamma"], p["beta"], stats["running_mean"],
                                              stats["running_var"], out, xc, xn, std, momentum, eps)
    # the kernel updated the contiguous working copies; write them back where they are not the caller's arrays
    for user, work in ((rm, stats["running_mean"]), (rv, stats["running_var"])):
        if work is not user and not np.shares_memory(work, user):
            user[...] = work.reshape(user.shape)
    return out, xc, xn, std


def batchnorm_forward_infer(x, gamma, beta, running_mean, running_var, eps: float = 1e-6) -> np.ndarray:
    """Inference-mode batch normalization with the running statistics."""
    dtype, x = _bn_x(x)
    p = _bn_params(x, dtype, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    out = np.empty(x.shape, dtype=dtype)
    _kernel("batchnorm_forward_infer", dtype)(x, p["gamma"], p["beta"], p["running_mean"], p["running_var"], out,
                                              _eps(eps))
    return out


def batchnorm_backward(dout, xc, xn, std, gamma):
    """Gradients (dx, dgamma, dbeta) of training-mode batch normalization."""
    dtype, arr = _floats(dout=dout, xc=xc, xn=xn, std=std, gamma=gamma)
    dout = arr["dout"]
    _ndim(dout, "dout", 2, "(N, D)")
    _nonempty(dout, "dout")
    for name in ("xc", "xn"):
        _same_shape(arr[name], name, dout.shape, "the shape of dout")
    p = _bn_params(dout, dtype, "dout", std=arr["std"], gamma=arr["gamma"])
    n, d = dout.shape
    dx = np.empty((n, d), dtype=dtype)
    dgamma = np.empty((d,), dtype=dtype)
    dbeta = np.empty((d,), dtype=dtype)
    _kernel("batchnorm_backward", dtype)(_c(dout, dtype), _c(arr["xc"], dtype), _c(arr["xn"], dtype), p["std"],
                                         p["gamma"], dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# ======================================================================================================
# optimizer updates (fastconv.optimizer): one fused in-place kernel per parameter
#
# A parameter is updated by the kernel when it is a writeable, aligned, C-contiguous float32 / float64 array
# (native byte order); its state arrays are kept so (created as zeros, or replaced by a contiguous copy in its
# dtype). Any other writeable float array (a strided view, float16, byte-swapped) is updated in place by the
# NumPy formula of fastconv.reference.optimizer, which the kernels match bit for bit. The gradient is cast to
# the parameter's dtype and made contiguous once. A whole parameter set goes to the kernels in one binding call
# per dtype (Python's per-parameter work is a few identity and flag tests; the binding checks each array).

__all__ += [
    "check_param_dicts",
    "optimizer_hyperparameters",
    "optimizer_update",
    "sgd_update",
    "momentum_update",
    "nesterov_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "adadelta_update",
]

# method -> (state arrays, scalars), both in the kernel's argument order
_OPTIM_ARGS = {
    "sgd": ((), ("lr", "weight_decay")),
    "momentum": (("v",), ("lr", "momentum", "weight_decay")),
    "nesterov": (("v",), ("lr", "momentum", "weight_decay")),
    "adagrad": (("h",), ("lr", "eps", "weight_decay")),
    "rmsprop": (("h",), ("lr", "decay_rate", "eps", "weight_decay")),
    "adam": (("m", "v"), ("lr_t", "beta1", "beta2", "eps", "weight_decay")),
    "adadelta": (("h", "d"), ("lr", "rho", "eps", "weight_decay")),
}

# hyperparameter -> (low, high, high included): every one must be >= low (eps: > 0) and finite
_OPTIM_RANGE = {
    "lr": (0.0, math.inf, False),
    "lr_t": (0.0, math.inf, False),
    "weight_decay": (0.0, math.inf, False),
    "momentum": (0.0, 1.0, True),
    "decay_rate": (0.0, 1.0, True),
    "rho": (0.0, 1.0, True),
    "beta1": (0.0, 1.0, False),  # 1 - beta1**t divides the step size
    "beta2": (0.0, 1.0, False),
    "eps": (0.0, math.inf, False),
}


def optimizer_hyperparameters(**values) -> dict:
    """Check optimizer hyperparameters by name and return them as Python floats.

    ``lr``, ``lr_t`` and ``weight_decay`` must be finite and >= 0, ``eps`` finite and > 0, ``momentum``,
    ``decay_rate`` and ``rho`` in [0, 1], ``beta1`` and ``beta2`` in [0, 1).

    Returns
    -------
    dict of str to float
    """
    out = {}
    for name, v in values.items():
        if name not in _OPTIM_RANGE:
            raise TypeError(f"unknown optimizer hyperparameter {name!r}")
        f = _float(v, name)
        lo, hi, hi_in = _OPTIM_RANGE[name]
        ok = (f > lo if name == "eps" else f >= lo) and (f <= hi if hi_in else f < hi)
        if not ok:
            left = "(" if name == "eps" else "["
            right = "]" if hi_in else ")"
            raise ValueError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, got {v!r}")
        out[name] = f
    return out


def check_param_dicts(params, grads) -> None:
    """Check that ``params`` and ``grads`` are dicts with the same keys (ValueError naming the odd keys)."""
    if type(params) is dict and type(grads) is dict and params.keys() == grads.keys():
        return  # the common case, without building lists
    from collections.abc import Mapping

    for name, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name}: expected a dict of arrays, got {type(d).__name__}")
    missing = [k for k in params if k not in grads]
    if missing:
        raise ValueError(f"grads: no gradient for parameter(s) {missing} (params has keys {list(params)})")
    extra = [k for k in grads if k not in params]
    if extra:
        raise ValueError(f"grads: key(s) {extra} are not in params (params has keys {list(params)})")


def _opt_names(key) -> tuple[str, str]:
    return ("param", "grad") if key is None else (f"params[{key!r}]", f"grads[{key!r}]")


def _opt_param(p, pname: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        if hasattr(p, "__cuda_array_interface__"):
            raise TypeError(f"{pname}: CUDA arrays are not supported by this build ({CUDA_REASON})")
        raise TypeError(f"{pname}: expected a NumPy array (parameters are updated in place), got {type(p).__name__}")
    if p.dtype.kind != "f":
        raise TypeError(f"{pname}: dtype {p.dtype} is not supported, expected a floating dtype (float32 or float64)")
    if not p.flags.writeable:
        raise ValueError(f"{pname}: array is read-only (parameters are updated in place)")
    return p


def _opt_grad(g, p: np.ndarray, gname: str, pname: str) -> np.ndarray:
    g = _array(g, gname)
    if g.dtype.kind != "f":
        hint = f"; convert it first, e.g. {gname}.astype(np.float32)" if g.dtype.kind in "iub" else ""
        raise TypeError(f"{gname}: dtype {g.dtype} is not supported, expected a floating dtype{hint}")
    _same_shape(g, gname, p.shape, f"the shape of {pname}")
    return g


def _opt_state(s, p: np.ndarray, sname: str, pname: str, exact_dtype: bool) -> np.ndarray:
    if not isinstance(s, np.ndarray):
        raise TypeError(f"{sname}: expected a NumPy array, got {type(s).__name__}")
    _same_shape(s, sname, p.shape, f"the shape of {pname}")
    if exact_dtype and s.dtype != p.dtype:
        raise TypeError(f"{sname}: dtype {s.dtype}, expected {p.dtype} (the dtype of {pname})")
    if exact_dtype and not s.flags.writeable:
        raise ValueError(f"{sname}: array is read-only (optimizer state is updated in place)")
    if np.may_share_memory(s, p):
        raise ValueError(f"{sname}: shares memory with {pname}")
    return s


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _kernel_ready(a: np.ndarray) -> bool:
    """Whether the kernels can update ``a`` in place (the binding checks the same, and writeability)."""
    f = a.flags
    return f.c_contiguous and f.aligned and a.dtype in _SUFFIX


def _kernel_grad(g: np.ndarray, dtype) -> np.ndarray:
    """``g`` as a C-contiguous aligned array of ``dtype``: itself when it is one, else one copy."""
    f = g.flags
    if g.dtype == dtype and f.c_contiguous and f.aligned:
        return g
    return np.array(g, dtype=dtype, order="C")


def _numpy_step(method: str, p: np.ndarray, g: np.ndarray, states: list, scalars: tuple) -> None:
    """The reference formula, in place, for a parameter the kernels cannot take (strided, float16, ...)."""
    from .reference import optimizer as _ref

    g = g.astype(p.dtype, copy=False)
    if np.may_share_memory(g, p) or any(np.may_share_memory(g, s) for s in states):
        g = g.copy()
    getattr(_ref, f"{method}_step")(p, g, *states, *scalars)


def optimizer_update(method: str, params, grads, state: dict, **hyper) -> None:
    """One optimizer step on every parameter, in place: the fused kernel of ``method`` per array.

    Every argument is checked before any array changes. Kernel-ready parameters (writeable, aligned,
    C-contiguous float32 / float64) go to the kernels in one call per dtype; any other writeable float array is
    updated in place by the reference formula (the same results).

    Parameters
    ----------
    method : {'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adadelta'}
    params : dict of str to ndarray
        Parameters, writeable float arrays, updated in place.
    grads : dict of str to array_like
        Gradients with the keys of ``params``, each of its parameter's shape (cast to its dtype).
    state : dict of str to dict
        The method's state dicts by name (``{'v': ...}``, Adam ``{'m': ..., 'v': ...}``, Adadelta
        ``{'h': ..., 'd': ...}``), keyed like ``params``. Missing entries are created as zeros; entries of
        another dtype or layout are replaced by C-contiguous copies in the parameter's dtype.
    **hyper : float
        The method's scalars (see the ``*_update`` functions), checked by :func:`optimizer_hyperparameters`.

    Returns
    -------
    None
    """
    if method not in _OPTIM_ARGS:
        raise ValueError(f"method: unknown optimizer {method!r}, expected one of {list(_OPTIM_ARGS)}")
    state_names, scalar_names = _OPTIM_ARGS[method]
    if set(hyper) != set(scalar_names):
        raise TypeError(f"{method}: expected hyperparameters {list(scalar_names)}, got {sorted(hyper)}")
    checked = optimizer_hyperparameters(**hyper)
    scalars = tuple(checked[n] for n in scalar_names)
    check_param_dicts(params, grads)
    if set(state) != set(state_names):
        raise TypeError(f"state: expected the dicts {list(state_names)}, got {sorted(state)}")
    sdicts = [state[n] for n in state_names]
    for name, d in zip(state_names, sdicts):
        if not isinstance(d, dict):
            raise TypeError(f"state {name}: expected a dict of arrays, got {type(d).__name__}")
    # One pass checks every entry and gathers the kernel-ready parameters per dtype; nothing is written before
    # it has finished, so a bad entry leaves every parameter as it was. (Missing state is created as zeros on the
    # way, and state of another dtype or layout is converted: both equal what they replace.) The common case
    # costs a few identity and flag tests per parameter: the binding checks the shapes, dtypes and layouts of
    # the gradient and state arrays of kernel-ready parameters (raising the same messages); everything else
    # goes through the helpers below, which convert or raise the detailed errors.
    batches: dict = {}
    slow = []
    for key, p in params.items():
        g = grads[key]
        dt = p.dtype if type(p) is np.ndarray else None
        if (dt is _F32 or dt is _F64) and (f := p.flags).c_contiguous and f.aligned and f.writeable:
            if not (type(g) is np.ndarray and g.dtype is dt and (f := g.flags).c_contiguous and f.aligned):
                g = _kernel_grad(_opt_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]"), dt)
            b = batches.get(dt)
            if b is None:
                b = batches[dt] = [[] for _ in range(3 + len(sdicts))]
            b[0].append(key)
            b[1].append(p)
            b[2].append(g)
            for j, d in enumerate(sdicts):
                st = d.get(key)
                if st is None:
                    st = d[key] = np.zeros(p.shape, dtype=dt)
                elif not (type(st) is np.ndarray and st.dtype is dt and (f := st.flags).c_contiguous and f.aligned
                          and f.writeable):  # another dtype or layout (loaded or assigned): a private copy
                    _opt_state(st, p, f"{state_names[j]}[{key!r}]", f"params[{key!r}]", False)
                    st = d[key] = np.array(st, dtype=dt, order="C")
                b[3 + j].append(st)
            continue
        p = _opt_param(p, f"params[{key!r}]")
        g = _opt_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]")
        sts = []
        for name, d in zip(state_names, sdicts):
            st = d.get(key)
            if st is None:
                st = d[key] = np.zeros(p.shape, dtype=p.dtype)
            else:
                _opt_state(st, p, f"{name}[{key!r}]", f"params[{key!r}]", False)
                if st.dtype != p.dtype or not st.flags.writeable:
                    st = d[key] = np.array(st, dtype=p.dtype)
            sts.append(st)
        if _kernel_ready(p):  # float32 / float64 with a non-builtin descriptor (e.g. with metadata)
            b = batches.setdefault(p.dtype, [[] for _ in range(3 + len(sdicts))])
            for lst, a in zip(b, (key, p, _kernel_grad(g, p.dtype), *sts)):
                lst.append(a)
        else:
            slow.append((p, g, sts))
    if len(batches) + bool(slow) > 1:
        # the binding checks its own batch before it writes anything; with several batches, check all of them
        # here, so that a later one cannot fail after an earlier one has run
        for keys, ps, gs, *sl in batches.values():
            for i, key in enumerate(keys):
                _opt_grad(gs[i], ps[i], f"grads[{key!r}]", f"params[{key!r}]")
                for name, lst in zip(state_names, sl):
                    _opt_state(lst[i], ps[i], f"{name}[{key!r}]", f"params[{key!r}]", False)
    for dtype, (keys, ps, gs, *sl) in batches.items():
        _kernel(f"{method}_update", dtype)(ps, gs, *sl, *scalars, keys)
    for p, g, sts in slow:
        _numpy_step(method, p, g, sts, scalars)


def _opt_one(method: str, param, grad, states: dict, key, **hyper) -> None:
    """One parameter's update with caller-owned state arrays (same shape and dtype as the parameter)."""
    pname, gname = _opt_names(key)
    checked = optimizer_hyperparameters(**hyper)
    scalars = tuple(checked[n] for n in _OPTIM_ARGS[method][1])
    p = _opt_param(param, pname)
    g = _opt_grad(grad, p, gname, pname)
    arrays = [_opt_state(s, p, name if key is None else f"{name}[{key!r}]", pname, True)
              for name, s in states.items()]
    if len(arrays) == 2 and np.may_share_memory(arrays[0], arrays[1]):
        raise ValueError(f"{' and '.join(states)}: the two state arrays share memory")
    if _kernel_ready(p) and all(_kernel_ready(s) for s in arrays):
        _kernel(f"{method}_update", p.dtype)([p], [_kernel_grad(g, p.dtype)], *([s] for s in arrays), *scalars,
                                             [pname])
    else:
        _numpy_step(method, p, g, arrays, scalars)


def sgd_update(param, grad, lr: float, weight_decay: float = 0.0, *, key=None) -> None:
    """SGD step in place: ``param -= lr * g`` with ``g = grad + weight_decay * param``.

    Parameters
    ----------
    param : ndarray
        Writeable float array, updated in place.
    grad : array_like
        Gradient of ``param``'s shape (cast to its dtype).
    lr, weight_decay : float
        Learning rate and L2 coefficient (both >= 0).
    key : str, optional
        Name used in error messages (``params[key]``).

    Returns
    -------
    None
    """
    _opt_one("sgd", param, grad, {}, key, lr=lr, weight_decay=weight_decay)


def momentum_update(param, grad, v, lr: float, momentum: float, weight_decay: float = 0.0, *, key=None) -> None:
    """Momentum step in place: ``v = momentum*v - lr*g; param += v`` (``v`` of param's shape and dtype)."""
    _opt_one("momentum", param, grad, {"v": v}, key, lr=lr, momentum=momentum, weight_decay=weight_decay)


def nesterov_update(param, grad, v, lr: float, momentum: float, weight_decay: float = 0.0, *, key=None) -> None:
    """The book's Nesterov step in place: ``v = momentum*v - lr*g; param += momentum**2*v - (1+momentum)*lr*g``."""
    _opt_one("nesterov", param, grad, {"v": v}, key, lr=lr, momentum=momentum, weight_decay=weight_decay)


def adagrad_update(param, grad, h, lr: float, eps: float = 1e-7, weight_decay: float = 0.0, *, key=None) -> None:
    """AdaGrad step in place: ``h += g*g; param -= lr*g / (sqrt(h) + eps)``."""
    _opt_one("adagrad", param, grad, {"h": h}, key, lr=lr, eps=eps, weight_decay=weight_decay)


def rmsprop_update(param, grad, h, lr: float, decay_rate: float, eps: float = 1e-7, weight_decay: float = 0.0, *,
                   key=None) -> None:
    """RMSprop step in place: ``h = decay_rate*h + (1-decay_rate)*g*g; param -= lr*g / (sqrt(h) + eps)``."""
    _opt_one("rmsprop", param, grad, {"h": h}, key, lr=lr, decay_rate=decay_rate, eps=eps,
             weight_decay=weight_decay)


def adam_update(param, grad, m, v, lr_t: float, beta1: float, beta2: float, eps: float = 1e-7,
                weight_decay: float = 0.0, *, key=None) -> None:
    """The book's Adam step in place, with the bias-corrected step size ``lr_t`` given:
    ``m += (1-beta1)*(g-m); v += (1-beta2)*(g*g-v); param -= lr_t*m / (sqrt(v) + eps)``."""
    _opt_one("adam", param, grad, {"m": m, "v": v}, key, lr_t=lr_t, beta1=beta1, beta2=beta2, eps=eps,
             weight_decay=weight_decay)


def adadelta_update(param, grad, h, d, lr: float, rho: float, eps: float, weight_decay: float = 0.0, *,
                    key=None) -> None:
    """Adadelta step in place: ``h = rho*h + (1-rho)*g*g; dx = sqrt(d+eps)/sqrt(h+eps)*g;
    d = rho*d + (1-rho)*dx*dx; param -= lr*dx``."""
    _opt_one("adadelta", param, grad, {"h": h, "d": d}, key, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)
