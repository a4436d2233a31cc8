"""Argument validation shared by every op and every backend: types, dtypes, ranks, shapes, window geometry and
scalar ranges, read from shapes and dtypes only (never from the data, so a device array costs no transfer).

Each check raises a ``TypeError`` or ``ValueError`` whose message names the argument, the shape seen and the
shape expected. ``fastconv.ops`` calls these once per op before it allocates anything; the optimizer engine
(``fastconv._optim``) uses the parameter, gradient, state and hyperparameter checks at the end of this module.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping

import numpy as np

from ._backend import CUDA_REASON, KERNEL_DTYPES, is_half

# Largest element count any array may have; sizes are checked against it before anything is allocated.
MAX_ELEMENTS = 2**62 // 8
# Window parameters (filter and pool sizes, stride, pad) above this are rejected, as in the C++ geometry check
# (csrc/common/geom.h).
MAX_WINDOW_PARAM = 2**40


# ======================================================================================================
# arrays, dtypes and ranks


def shape_str(s) -> str:
    return str(tuple(int(v) for v in s))


def array(x, name: str) -> np.ndarray:
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


def check_float(a, name: str, half: bool = False) -> None:
    """A dtype the kernels take (non-native byte order is converted by ops, as NumPy would); float16 and
    bfloat16 only where ``half`` (the op has kernels for them)."""
    dt = a.dtype.newbyteorder("=")
    if dt not in KERNEL_DTYPES or (is_half(dt) and not half):
        hint = ""
        expected = "float32, float64, float16 or bfloat16" if half else "float32 or float64"
        if a.dtype.kind in "iub":
            hint = f"; convert it first, e.g. {name}.astype(np.float32)"
        elif is_half(dt):
            # every op takes 16-bit data since 2026-12-07; what still refuses it are the float64 statistics
            # an op hands back (spatial_batchnorm_backward's mean and invstd)
            hint = f"; {name} is not a 16-bit operand, pass it as the op returned it"
        raise TypeError(f"{name}: dtype {a.dtype} is not supported, expected {expected}{hint}")


def floats(half: bool = False, **named) -> tuple[np.dtype, dict]:
    """Arrays of a float dtype the kernels take, and their common result dtype (np.result_type); float16 and
    bfloat16 are accepted only where ``half`` (see check_float)."""
    arrays = {}
    for name, x in named.items():
        a = array(x, name)
        check_float(a, name, half)
        arrays[name] = a
    return np.result_type(*arrays.values()).newbyteorder("="), arrays


def ndim(a, name: str, n: int, layout: str) -> None:
    if a.ndim != n:
        raise ValueError(f"{name}: expected a {n}-D array {layout}, got shape {shape_str(a.shape)}")


def nonempty(a, name: str) -> None:
    if a.size == 0:
        raise ValueError(f"{name}: empty array (shape {shape_str(a.shape)}); every dimension must be >= 1")


def same_shape(a, name: str, expected, expected_from: str) -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name}: shape {shape_str(a.shape)}, expected {shape_str(expected)} ({expected_from})")


def rows(x, name: str):
    """A 1-D (K,) or 2-D (N, K) non-empty array as (N, K) (a view)."""
    if x.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D (K,) or 2-D (N, K) array, got shape {shape_str(x.shape)}")
    nonempty(x, name)
    return x.reshape(1, -1) if x.ndim == 1 else x


def check_elements(name: str, *dims: int, culprit: str | None = None) -> None:
    """Reject an array of ``name`` whose element count would exceed MAX_ELEMENTS; the message starts with the
    argument that made it large (``culprit``), defaulting to ``name``."""
    total = math.prod(int(d) for d in dims)
    if total > MAX_ELEMENTS:
        raise ValueError(f"{culprit or name}: the {name} array would have {total} elements, too large "
                         f"(sizes {shape_str(dims)})")


class ShapeOnly:
    """Stand-in with the ndim/shape/size of an array that need not exist (for shape-only checks)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.size = math.prod(shape)  # Python ints: np.prod would wrap around in int64


def shape_arg(shape, name: str) -> tuple:
    """A shape argument (N, C, H, W) as a tuple of 4 positive ints, checked for size."""
    try:
        out = tuple(integer(s, name, 1) for s in shape)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of 4 ints, got {shape!r}") from None
    if len(out) != 4:
        raise ValueError(f"{name}: expected (N, C, H, W), got {shape!r}")
    return out


# ======================================================================================================
# scalars


def integer(v, name: str, minimum: int, maximum: float = MAX_WINDOW_PARAM) -> int:
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


def real(v, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
    return float(v)


def ratio(v) -> float:
    r = real(v, "dropout_ratio")
    if not 0.0 <= r < 1.0:
        raise ValueError(f"dropout_ratio must be in [0, 1), got {r}")
    return r


def eps(v) -> float:
    e = real(v, "eps")
    if not e > 0.0:
        raise ValueError(f"eps must be > 0, got {e}")
    return e


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2**64), or a TypeError / ValueError naming it."""
    i = integer(seed, "seed", 0, maximum=math.inf)
    if i >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {i}")
    return i


# ======================================================================================================
# window geometry (convolution, im2col, pooling)


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """Output length of a convolution or pooling window sliding along one axis.

    Parameters
    ----------
    input_size : int
        Input length (H or W).
    filter_size : int
        Window length (FH or FW).
    stride : int, optional
        Step between windows.
    pad : int, optional
        Zero padding added on both sides.

    Returns
    -------
    int
        ``(input_size + 2*pad - filter_size) // stride + 1``.
    """
    return (input_size + 2 * pad - filter_size) // stride + 1


def stride_pad(stride, pad) -> tuple[int, int]:
    return integer(stride, "stride", 1), integer(pad, "pad", 0)


def pair(v, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (for H, W) as a pair, each >= ``minimum``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise TypeError(f"{name}: expected an int or a pair (h, w), got {v!r}")
        return integer(v[0], name, minimum), integer(v[1], name, minimum)
    i = integer(v, name, minimum)
    return i, i


def same_padding(size: int, extent: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: the output is ceil(size / stride), the odd pixel of padding goes
    after (bottom / right). ``extent`` is the window's (dilated) extent."""
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def padding(pad, name: str = "pad", modes: tuple = ()) -> tuple[int, int, int, int] | str:
    """A padding argument as (top, bottom, left, right), each >= 0: an int (every side), a pair (ph, pw) (both
    sides of an axis), a 4-tuple (top, bottom, left, right) or a pair of pairs ((top, bottom), (left, right)).
    A string in ``modes`` ("same", "valid") is returned as is, for the caller to resolve."""
    if isinstance(pad, str):
        if pad in modes:
            return pad
        allowed = "an int, a pair (ph, pw), (top, bottom, left, right)" + "".join(f", {m!r}" for m in modes)
        raise ValueError(f"{name}: expected {allowed}, got {pad!r}")
    if isinstance(pad, (tuple, list)):
        if len(pad) == 2 and all(isinstance(p, (tuple, list)) for p in pad):
            if any(len(p) != 2 for p in pad):
                raise TypeError(f"{name}: expected ((top, bottom), (left, right)), got {pad!r}")
            pad = (*pad[0], *pad[1])
        elif len(pad) == 2:
            pad = (pad[0], pad[0], pad[1], pad[1])
        if len(pad) != 4:
            raise TypeError(f"{name}: expected an int, a pair (ph, pw) or (top, bottom, left, right), got {pad!r}")
        return tuple(integer(p, name, 0) for p in pad)
    p = integer(pad, name, 0)
    return p, p, p, p


def pad_str(pads) -> str:
    """A padding for messages: the int when every side is the same, else the 4-tuple."""
    return str(pads[0]) if len(set(pads)) == 1 else str(tuple(pads))


def size_culprit(H: int, W: int, pad, array_name: str) -> str:
    """Which argument to blame for an oversized window output: the pad when it dwarfs the input, else the input."""
    pads = (pad,) if isinstance(pad, int) else pad
    return "pad" if 2 * max(pads) > max(H, W) else array_name


def nhwc_hint(x_shape, channels_fit) -> str:
    """A hint for an (N, H, W, C) array passed where (N, C, H, W) is expected: when ``channels_fit(t)`` holds for
    the transposed shape ``t`` (the check that failed would pass), suggest the transpose."""
    if len(x_shape) != 4:
        return ""
    t = (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    if not channels_fit(t):
        return ""
    return (f"; x looks channels-last (N, H, W, C): pass x.transpose(0, 3, 1, 2), of shape {shape_str(t)}, "
            "for the (N, C, H, W) layout")


def window(H: int, W: int, fh: int, fw: int, stride, pad, what: str, x_name: str, x_shape, hint: str = "",
           dilation=(1, 1)) -> tuple:
    """Output size of a sliding window, or a ValueError if the window does not fit the padded input. ``stride``
    is an int or (sh, sw), ``pad`` an int or (top, bottom, left, right), ``dilation`` (dh, dw)."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    pt, pb, pl, pr = (pad,) * 4 if isinstance(pad, int) else pad
    dh, dw = dilation
    eh, ew = dh * (fh - 1) + 1, dw * (fw - 1) + 1
    HP, WP = H + pt + pb, W + pl + pr
    if HP < eh or WP < ew:
        dil = "" if (dh, dw) == (1, 1) else f" (dilated {eh}x{ew})"
        raise ValueError(
            f"{what} {fh}x{fw}{dil} is larger than the padded input {HP}x{WP} "
            f"({x_name} shape {shape_str(x_shape)}, pad={pad_str((pt, pb, pl, pr))}){hint}"
        )
    return (HP - eh) // sh + 1, (WP - ew) // sw + 1


class Geometry(tuple):
    """A checked window geometry: stride (sh, sw), pad (top, bottom, left, right), dilation (dh, dw) and the
    output size (OH, OW), in the form the kernels take."""

    __slots__ = ()

    def __new__(cls, stride, pad, dilation, OH, OW):
        return super().__new__(cls, (stride, pad, dilation, OH, OW))

    stride = property(lambda self: self[0])
    pad = property(lambda self: self[1])
    dilation = property(lambda self: self[2])
    OH = property(lambda self: self[3])
    OW = property(lambda self: self[4])


def conv_geometry(x, W, stride, pad, dilation=1, groups=1) -> Geometry:
    """The geometry of a convolution of x (N, C, H, W) with W (FN, C/groups, FH, FW), sizes checked. ``pad`` may
    be "valid" (0) or "same" (TensorFlow's rule: output ceil(H / sh), the odd pixel at the bottom / right)."""
    ndim(x, "x", 4, "(N, C, H, W)")
    ndim(W, "W", 4, "(FN, C, FH, FW)")
    nonempty(x, "x")
    nonempty(W, "W")
    groups = integer(groups, "groups", 1)
    C, FN = x.shape[1], W.shape[0]
    if C % groups:
        raise ValueError(f"groups: {groups} does not divide the {C} input channels of x (shape "
                         f"{shape_str(x.shape)})")
    if FN % groups:
        raise ValueError(f"groups: {groups} does not divide the {FN} filters of W (shape {shape_str(W.shape)})")
    if W.shape[1] * groups != C:
        hint = nhwc_hint(x.shape, lambda t: t[1] == W.shape[1] * groups)
        per = "" if groups == 1 else f" ({W.shape[1]} per group, groups={groups})"
        raise ValueError(
            f"W: shape {shape_str(W.shape)} expects {W.shape[1] * groups} input channels{per}, "
            f"but x: shape {shape_str(x.shape)} has {C}{hint}"
        )
    sh, sw = pair(stride, "stride", 1)
    dh, dw = pair(dilation, "dilation", 1)
    FH, FW = W.shape[2], W.shape[3]
    pads = padding(pad, "pad", ("same", "valid"))
    if pads == "valid":
        pads = (0, 0, 0, 0)
    elif pads == "same":
        pads = (*same_padding(x.shape[2], dh * (FH - 1) + 1, sh), *same_padding(x.shape[3], dw * (FW - 1) + 1, sw))
    OH, OW = window(x.shape[2], x.shape[3], FH, FW, (sh, sw), pads, "filter", "x", x.shape, dilation=(dh, dw))
    culprit = size_culprit(x.shape[2], x.shape[3], pads, "x")
    check_elements("out", x.shape[0], FN, OH, OW, culprit=culprit)
    check_elements("columns", OH, OW, W.shape[1], FH, FW, culprit=culprit)
    return Geometry((sh, sw), pads, (dh, dw), OH, OW)


def conv_shapes(x, W, stride: int, pad: int) -> tuple[int, int]:
    """(OH, OW) of a convolution of x (N, C, H, W) with W (FN, C, FH, FW), sizes checked."""
    g = conv_geometry(x, W, stride, pad)
    return g.OH, g.OW


def deconv_geometry(x, W, stride, pad, output_padding) -> Geometry:
    """The geometry of a transposed convolution of x (N, C_in, H, W) with W (C_in, C_out, FH, FW): the stride and
    padding of the convolution it transposes and the output size (OH, OW) = ((H - 1)*sh + FH - pt - pb + oph,
    ...). ``pad`` "same" (Keras' Conv2DTranspose: output H*sh) or "valid" (output H*sh + max(FH - sh, 0)) fixes
    the output padding itself."""
    ndim(x, "x", 4, "(N, C_in, H, W)")
    ndim(W, "W", 4, "(C_in, C_out, FH, FW)")
    nonempty(x, "x")
    nonempty(W, "W")
    if W.shape[0] != x.shape[1]:
        hint = nhwc_hint(x.shape, lambda t: t[1] == W.shape[0])
        raise ValueError(f"W: shape {shape_str(W.shape)} expects {W.shape[0]} input channels, "
                         f"but x: shape {shape_str(x.shape)} has {x.shape[1]}{hint}")
    sh, sw = pair(stride, "stride", 1)
    oph, opw = pair(output_padding, "output_padding", 0)
    H, Wd, FH, FW = x.shape[2], x.shape[3], W.shape[2], W.shape[3]
    pads = padding(pad, "pad", ("same", "valid"))
    if isinstance(pads, str):
        if (oph, opw) != (0, 0):
            raise ValueError(f"output_padding: must be 0 with pad={pads!r} (it fixes the output size), "
                             f"got {output_padding!r}")
        if pads == "same":  # the 'same' padding of the convolution of an output of H*sh
            th, tw = max(FH - sh, 0), max(FW - sw, 0)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            pads = (0, 0, 0, 0)
        oph, opw = max(sh - FH, 0), max(sw - FW, 0)
    if oph >= sh or opw >= sw:
        raise ValueError(f"output_padding must be smaller than stride {(sh, sw)}, got {(oph, opw)}")
    OH = (H - 1) * sh + FH - pads[0] - pads[1] + oph
    OW = (Wd - 1) * sw + FW - pads[2] - pads[3] + opw
    if OH < 1 or OW < 1:
        raise ValueError(f"pad: {pad_str(pads)} leaves an empty output {OH}x{OW} (x shape {shape_str(x.shape)}, "
                         f"filter {FH}x{FW}, stride {(sh, sw)})")
    check_elements("y", x.shape[0], W.shape[1], OH, OW, culprit="pad" if max(pads) > max(H, Wd) else "x")
    check_elements("columns", H, Wd, W.shape[1], FH, FW, culprit="x")
    return Geometry((sh, sw), pads, (1, 1), OH, OW)


def im2col_shapes(x_shape, fh: int, fw: int, stride: int, pad: int, x_name: str) -> tuple[int, int]:
    """(OH, OW) of im2col / col2im over an input of ``x_shape`` (N, C, H, W), the column matrix size checked."""
    N, C, H, W = x_shape
    OH, OW = window(H, W, fh, fw, stride, pad, "filter", x_name, x_shape)
    check_elements("col", N, OH, OW, C, fh, fw, culprit=size_culprit(H, W, pad, x_name))
    return OH, OW


def pool_args(x, pool_h, pool_w, stride, pad) -> tuple:
    """(pool_h, pool_w, geometry) of a pooling of x (N, C, H, W), sizes checked. ``stride`` is an int or a pair,
    ``pad`` as for a convolution ("same": TensorFlow's rule; every side's padding must stay below the window)."""
    ndim(x, "x", 4, "(N, C, H, W)")
    nonempty(x, "x")
    ph, pw = integer(pool_h, "pool_h", 1), integer(pool_w, "pool_w", 1)
    sh, sw = pair(stride, "stride", 1)
    pads = padding(pad, "pad", ("same", "valid"))
    if pads == "valid":
        pads = (0, 0, 0, 0)
    elif pads == "same":
        pads = (*same_padding(x.shape[2], ph, sh), *same_padding(x.shape[3], pw, sw))
    if max(pads[:2]) >= ph or max(pads[2:]) >= pw:
        raise ValueError(f"pad must be smaller than the pool window {ph}x{pw}, got pad={pad_str(pads)}")
    fit = max(pads)
    hint = nhwc_hint(x.shape, lambda t: t[2] + 2 * fit >= ph and t[3] + 2 * fit >= pw)
    OH, OW = window(x.shape[2], x.shape[3], ph, pw, (sh, sw), pads, "pool window", "x", x.shape, hint)
    check_elements("out", x.shape[0], x.shape[1], OH, OW, culprit=size_culprit(x.shape[2], x.shape[3], pads, "x"))
    if x.shape[2] * x.shape[3] >= 2**31:
        raise ValueError(f"x: image plane {x.shape[2]}x{x.shape[3]} is too large for pooling (>= 2**31 pixels)")
    return ph, pw, Geometry((sh, sw), pads, (1, 1), OH, OW)


def pool_grad_shape(dout, x_shape, pool_h, pool_w, stride, pad):
    """(x_shape, pool_h, pool_w, geometry) of a pooling backward, dout checked against the forward output."""
    ndim(dout, "dout", 4, "(N, C, OH, OW)")
    shape = shape_arg(x_shape, "x_shape")
    check_elements("dx", *shape, culprit="x_shape")
    ph, pw, g = pool_args(ShapeOnly(shape), pool_h, pool_w, stride, pad)
    same_shape(dout, "dout", (shape[0], shape[1], g.OH, g.OW), "the shape of the forward output")
    return shape, ph, pw, g


def zeropad_args(x, pad, name: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a zero padding (name "pad") or a cropping (name "crop") of x (N, C, H, W);
    a cropping must leave at least one row and one column."""
    ndim(x, "x", 4, "(N, C, H, W)")
    nonempty(x, "x")
    t, b, l, r = padding(pad, name)
    H, W = x.shape[2], x.shape[3]
    if name == "crop":
        if t + b >= H or l + r >= W:
            raise ValueError(f"crop: {pad_str((t, b, l, r))} removes every row or column of x (shape "
                             f"{shape_str(x.shape)}); top + bottom must be < {H}, left + right < {W}")
    else:
        check_elements("out", x.shape[0], x.shape[1], H + t + b, W + l + r, culprit="pad")
    return t, b, l, r


# ======================================================================================================
# affine, labels and targets, batch normalization


def affine_shapes(x, W) -> None:
    ndim(x, "x", 2, "(N, D)")
    ndim(W, "W", 2, "(D, H)")
    nonempty(x, "x")
    nonempty(W, "W")
    if x.shape[1] != W.shape[0]:
        raise ValueError(
            f"W: shape {shape_str(W.shape)} expects {W.shape[0]} input features, "
            f"but x: shape {shape_str(x.shape)} has {x.shape[1]}"
        )


def labels(t, name: str, n: int) -> None:
    """Integer labels of shape (n,) (their range is checked by the kernel, which never trusts an index)."""
    if t.dtype.kind == "b" or t.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: labels must be integers, got dtype {t.dtype}; pass one-hot targets with the shape of x instead"
        )
    if t.shape != (n,):
        raise ValueError(f"{name}: shape {shape_str(t.shape)}, expected ({n},) labels or one-hot targets of x's "
                         "shape")


def targets(t, x2_shape, x_shape):
    """(t, is_labels, t2_shape): ``t`` as an array, whether it holds integer labels (N,) rather than dense targets
    of x's shape, and the shape to view it as. ``x2_shape`` is x as (N, K)."""
    t = array(t, "t")
    n, k = x2_shape
    kind = "f" if is_half(t.dtype) else t.dtype.kind  # ml_dtypes' bfloat16 has kind "V"
    if t.shape in (tuple(x_shape), tuple(x2_shape)) and kind in "fiub":
        # dense (one-hot or probability) targets of x's shape, any real dtype; they take x's dtype (as the
        # book: t.size == y.size means one-hot, also for a single class)
        if kind == "f":
            check_float(t, "t", half=True)
        return t, False, (n, k)
    if t.ndim == 0 and n == 1:
        t = t.reshape(1)
    if kind == "f":
        raise TypeError(
            f"t: float targets must have the shape of x {shape_str(x_shape)} (one-hot), got {shape_str(t.shape)}; "
            "labels must be integers"
        )
    labels(t, "t", n)
    return t, True, (n,)


def bn_param(p, name: str, x, x_name: str = "x"):
    """A per-feature batch-norm array of x's D elements (any shape holding D elements)."""
    p = array(p, name)
    check_float(p, name, half=True)
    d = x.shape[1]
    if p.size != d:
        raise ValueError(f"{name}: shape {shape_str(p.shape)} has {p.size} elements, expected {d} ({x_name} has "
                         f"shape {shape_str(x.shape)})")
    return p


def writeable(a, name: str, why: str) -> None:
    if not a.flags.writeable:
        raise ValueError(f"{name}: array is read-only ({why})")


# ======================================================================================================
# optimizer updates: hyperparameters, parameter dicts, parameters, gradients and state

# hyperparameter -> (low, high, high included): every one must be >= low (eps: > 0) and finite
OPTIM_RANGE = {
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
        if name not in OPTIM_RANGE:
            raise TypeError(f"unknown optimizer hyperparameter {name!r}")
        f = real(v, name)
        lo, hi, hi_in = OPTIM_RANGE[name]
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
    for name, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name}: expected a dict of arrays, got {type(d).__name__}")
    missing = [k for k in params if k not in grads]
    if missing:
        raise ValueError(f"grads: no gradient for parameter(s) {missing} (params has keys {list(params)})")
    extra = [k for k in grads if k not in params]
    if extra:
        raise ValueError(f"grads: key(s) {extra} are not in params (params has keys {list(params)})")


def opt_param(p, pname: str):
    """A parameter: a writeable float array (updated in place)."""
    if not isinstance(p, np.ndarray):
        if hasattr(p, "__cuda_array_interface__"):
            raise TypeError(f"{pname}: CUDA arrays are not supported by this build ({CUDA_REASON})")
        raise TypeError(f"{pname}: expected a NumPy array (parameters are updated in place), got {type(p).__name__}")
    if p.dtype.kind != "f" and not is_half(p.dtype):
        raise TypeError(f"{pname}: dtype {p.dtype} is not supported, expected a floating dtype (float32, float64, "
                        "float16 or bfloat16)")
    writeable(p, pname, "parameters are updated in place")
    return p


def opt_grad(g, p, gname: str, pname: str):
    """A gradient: a float array of its parameter's shape (any float dtype: it is cast to the parameter's)."""
    g = array(g, gname)
    if g.dtype.kind != "f" and not is_half(g.dtype):
        hint = f"; convert it first, e.g. {gname}.astype(np.float32)" if g.dtype.kind in "iub" else ""
        raise TypeError(f"{gname}: dtype {g.dtype} is not supported, expected a floating dtype{hint}")
    same_shape(g, gname, p.shape, f"the shape of {pname}")
    return g


def opt_state(s, p, sname: str, pname: str, exact_dtype: bool):
    """An optimizer state array of its parameter's shape, not overlapping it; with ``exact_dtype`` (caller-owned
    state, updated in place) of its parameter's dtype and writeable."""
    if not isinstance(s, np.ndarray):
        raise TypeError(f"{sname}: expected a NumPy array, got {type(s).__name__}")
    same_shape(s, sname, p.shape, f"the shape of {pname}")
    if exact_dtype and s.dtype != p.dtype:
        raise TypeError(f"{sname}: dtype {s.dtype}, expected {p.dtype} (the dtype of {pname})")
    if exact_dtype:
        writeable(s, sname, "optimizer state is updated in place")
    if np.may_share_memory(s, p):
        raise ValueError(f"{sname}: shares memory with {pname}")
    return s


# ======================================================================================================
# GEMM and output arrays


def gemm_shapes(a, b, trans_a: bool, trans_b: bool) -> tuple[int, int, int]:
    """(M, N, K) of op(a) (M, K) @ op(b) (K, N)."""
    ndim(a, "a", 2, "(M, K)")
    ndim(b, "b", 2, "(K, N)")
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if K != Kb:
        raise ValueError(
            f"b: shape {shape_str(b.shape)} does not match a: shape {shape_str(a.shape)} "
            f"(op(a) is {M}x{K}, op(b) is {Kb}x{N})"
        )
    return M, N, K


def out_array(out, dtype, shape, expected_from: str) -> None:
    """A caller's output array: an ndarray of ``dtype`` and ``shape``, C-contiguous and writeable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected an ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out: dtype {out.dtype}, expected {dtype} (the result dtype of a and b)")
    same_shape(out, "out", shape, expected_from)
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: must be a writeable C-contiguous array")


def argmax_array(argmax, dout_shape):
    """Max-pooling argmax: an integer array of dout's shape (its values are checked by ops and the kernel)."""
    argmax = array(argmax, "argmax")
    if argmax.dtype.kind not in "iu" or argmax.dtype.kind == "b":
        raise TypeError(f"argmax: expected an integer array, got dtype {argmax.dtype}")
    same_shape(argmax, "argmax", dout_shape, "the shape of dout")
    return argmax


def bool_mask(mask, dout_shape):
    """A dropout mask: a bool array of dout's shape."""
    mask = array(mask, "mask")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
    same_shape(mask, "mask", dout_shape, "the shape of dout")
    return mask


# ======================================================================================================
# layers of issue 16: leaky ReLU, spatial batch norm, global pooling, upsampling, two-input layers, losses


def alpha(v) -> float:
    """The leaky ReLU slope: a finite real number >= 0 (the backward reads the input's sign from the
    output)."""
    a = real(v, "alpha")
    if not (math.isfinite(a) and a >= 0.0):
        raise ValueError(f"alpha must be a finite number >= 0, got {a}")
    return a


def nchw(x, name: str) -> None:
    """A non-empty 4-D array (N, C, H, W)."""
    ndim(x, name, 4, "(N, C, H, W)")
    nonempty(x, name)


def scale_pair(scale) -> tuple[int, int]:
    """An upsampling factor: an int or a pair (scale_h, scale_w) of ints, each >= 1."""
    if isinstance(scale, (tuple, list)):
        if len(scale) != 2:
            raise ValueError(f"scale: expected an int or a pair (scale_h, scale_w), got {scale!r}")
        return integer(scale[0], "scale[0]", 1), integer(scale[1], "scale[1]", 1)
    s = integer(scale, "scale", 1)
    return s, s


UPSAMPLE_MODES = ("nearest", "bilinear")


def upsample_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode: expected one of {', '.join(map(repr, UPSAMPLE_MODES))}, got {mode!r}")
    return mode


def upsample_shapes(x_shape, sh: int, sw: int) -> tuple:
    """The output shape (N, C, H*sh, W*sw) of an upsampling of ``x_shape``, its size checked."""
    N, C, H, W = x_shape
    check_elements("out", N, C, H, sh, W, sw, culprit="scale")
    return (N, C, H * sh, W * sw)


def concat_axis(axis, nd: int, name: str = "axis") -> int:
    """An axis of an array of ``nd`` dimensions (negative counts from the end), as a non-negative int."""
    a = integer(axis, name, -nd, nd - 1) if nd else None
    if a is None:
        raise ValueError(f"{name}: cannot concatenate 0-D arrays")
    return a % nd


def concat_shapes(a, b, axis: int, b_name: str = "b") -> None:
    """``b`` (named ``b_name``) of a's rank and of a's extents on every axis but ``axis``."""
    if a.ndim != b.ndim:
        raise ValueError(f"{b_name}: shape {shape_str(b.shape)} has {b.ndim} dimensions, expected {a.ndim} "
                         f"(the rank of a: shape {shape_str(a.shape)})")
    for i, (p, q) in enumerate(zip(a.shape, b.shape)):
        if i != axis and p != q:
            raise ValueError(f"{b_name}: shape {shape_str(b.shape)} differs from a: shape {shape_str(a.shape)} "
                             f"on axis {i}; only axis {axis} (the concatenation axis) may differ")


def loss_targets(t, x_shape, x_name: str = "x"):
    """Float targets of the shape of the scores ``x_shape`` (elementwise losses)."""
    t = array(t, "t")
    if t.dtype.kind in "iub":
        t = t.astype(np.float64)
    check_float(t, "t", half=True)
    same_shape(t, "t", x_shape, f"the shape of {x_name}")
    return t


# ======================================================================================================
# recurrent cells, embeddings and losses over time (fastconv.time_layers)


def recurrent_shapes(xs, Wx, Wh, b, gates: int, cell: str) -> tuple[int, int, int, int]:
    """(N, T, D, H) of a recurrent cell with ``gates`` gate blocks over xs (N, T, D): Wx (D, G*H), Wh (H, G*H) and
    (when given) b (G*H,)."""
    ndim(xs, "xs", 3, "(N, T, D)")
    nonempty(xs, "xs")
    ndim(Wh, "Wh", 2, f"(H, {gates}*H)")
    nonempty(Wh, "Wh")
    N, T, D = xs.shape
    H = Wh.shape[0]
    layout = f"{cell}: {gates} gate block(s) of H = {H} units (H from Wh's rows)" if gates > 1 else \
        f"{cell}: H = {H} units (from Wh's rows)"
    same_shape(Wh, "Wh", (H, gates * H), layout)
    same_shape(Wx, "Wx", (D, gates * H), f"xs has D = {D} features; {layout}")
    if b is not None:
        same_shape(b, "b", (gates * H,), layout)
    check_elements("gates", N, T, gates * H, culprit="xs")
    return N, T, D, H


def seq_arrays(shapes: dict, **arrays) -> None:
    """Each named array has the shape ``shapes[name]`` (states (N, H), sequences (N, T, H), ...)."""
    for name, a in arrays.items():
        same_shape(a, name, shapes[name], "the shapes of xs and the weights")


def ids(idx, name: str = "idx"):
    """Integer ids (any shape); their range is checked by the kernel, which never trusts an index."""
    idx = array(idx, name)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got dtype {idx.dtype}")
    return idx


def table_shape(W_shape) -> tuple[int, int]:
    """The (V, D) shape of an embedding table, both >= 1."""
    if not isinstance(W_shape, (tuple, list)) or len(W_shape) != 2:
        raise ValueError(f"W_shape: expected (V, D), got {W_shape!r}")
    return integer(W_shape[0], "W_shape", 1), integer(W_shape[1], "W_shape", 1)


def time_targets(ts, xs_shape):
    """Labels (N, T) for scores (N, T, V): integer labels as they are, one-hot targets (N, T, V) as their argmax
    (as the sequel's TimeSoftmaxWithLoss)."""
    ts = array(ts, "ts")
    if tuple(ts.shape) == tuple(xs_shape) and ts.dtype.kind in "fiub":
        return ts.argmax(axis=-1)
    if ts.dtype.kind not in "iu":
        raise TypeError(f"ts: expected integer labels of shape {shape_str(xs_shape[:-1])} or one-hot targets of "
                        f"shape {shape_str(xs_shape)}, got dtype {ts.dtype}")
    same_shape(ts, "ts", xs_shape[:-1], f"one label per step of xs {shape_str(xs_shape)}")
    return ts


def attention_shapes(hs, hs_name: str, other, other_name: str, other_layout: str) -> tuple[int, int, int]:
    """(N, S, H) of encoder states hs (N, S, H), checked against a decoder state (N, H), decoder states (N, L, H)
    or weights (N, S) named ``other_name`` (its layout in ``other_layout``)."""
    ndim(hs, hs_name, 3, "(N, S, H)")
    nonempty(hs, hs_name)
    N, S, H = hs.shape
    ndim(other, other_name, len(other_layout.split(",")), other_layout)
    nonempty(other, other_name)
    want = {"(N, H)": (N, H), "(N, S)": (N, S), "(N, L, H)": (N, other.shape[1], H)}[other_layout]
    same_shape(other, other_name, want, f"{hs_name} has shape {shape_str(hs.shape)}")
    return N, S, H


def last_axis_rows(x, name: str):
    """A non-empty array (..., D) with at least one axis, as rows (M, D) (a view when it can be one)."""
    if x.ndim < 1:
        raise ValueError(f"{name}: expected an array (..., D), got a 0-D array")
    nonempty(x, name)
    return x.reshape(-1, x.shape[-1])


def sdpa_shapes(q, k, v) -> tuple[int, int, int, int, int]:
    """(B, L, S, E, F) of scaled dot-product attention's queries q (B, L, E), keys k (B, S, E) and values v
    (B, S, F), every one non-empty."""
    for a, name, layout in ((q, "q", "(B, L, E)"), (k, "k", "(B, S, E)"), (v, "v", "(B, S, F)")):
        ndim(a, name, 3, layout)
        nonempty(a, name)
    B, L, E = q.shape
    S = k.shape[1]
    same_shape(k, "k", (B, S, E), f"q has shape {shape_str(q.shape)}")
    same_shape(v, "v", (B, S, v.shape[2]), f"k has shape {shape_str(k.shape)}")
    check_elements("p", B, L, S)
    return B, L, S, E, v.shape[2]
