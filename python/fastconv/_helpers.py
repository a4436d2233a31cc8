"""Plain-NumPy helpers that fastconv's own modules need: the book's data and curve utilities, its
finite-difference gradient, the cross-entropy target parsing and Adam's bias-corrected step size.

They are not kernels and have no oracle of their own to be tested against (their tests use known values).
``fastconv.reference`` imports them from here, never the reverse: nothing in this module imports the kernels or
the reference.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "adam_lr_t",
    "as_float",
    "numerical_gradient",
    "parse_targets",
    "shuffle_dataset",
    "smooth_curve",
]


# ======================================================================================================
# data and curves (book: common/util.py)


def shuffle_dataset(x, t):
    """Shuffle samples and their targets with one permutation of the first axis.

    Parameters
    ----------
    x : ndarray
        Samples, shape (N, ...).
    t : ndarray
        Targets, shape (N,) (labels) or (N, K) (one-hot).

    Returns
    -------
    x : ndarray
        Shuffled samples.
    t : ndarray
        Targets shuffled with the same permutation.
    """
    if len(x) != len(t):
        raise ValueError(f"x and t must have the same length, got {len(x)} and {len(t)}")
    perm = np.random.permutation(len(x))
    return x[perm], t[perm]


def smooth_curve(x):
    """Smooth a 1-D curve (e.g. a loss history) with a normalised Kaiser window.

    The curve is mirrored by 10 samples at both ends, convolved with
    ``np.kaiser(11, 2)`` normalised to sum 1, and trimmed back to its length.

    Parameters
    ----------
    x : array_like
        1-D curve of at least 11 samples.

    Returns
    -------
    ndarray
        Smoothed curve of the same length (and floating dtype) as ``x``.
    """
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    x = x.astype(dtype, copy=False)
    window_len = 11
    if x.ndim != 1 or x.shape[0] < window_len:
        raise ValueError(f"x must be 1-D with at least {window_len} samples, got shape {x.shape}")
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve((w / w.sum()).astype(dtype), s, mode="valid")
    return y[5:len(y) - 5]


# ======================================================================================================
# losses and gradients (book: common/functions.py, common/gradient.py)


def as_float(x):
    """Return ``x`` as an ndarray, keeping floating dtypes and promoting others to float64."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def parse_targets(y, t):
    """Bring ``y`` to 2-D and classify ``t`` as dense targets or integer labels.

    Parameters
    ----------
    y : ndarray
        Probabilities, shape (C,) (a batch of one) or (N, C).
    t : array_like
        Integer labels, shape (N,) (or a scalar / (1,) when ``y`` is 1-D), or dense
        targets (one-hot or probabilities) with the shape of ``y``.

    Returns
    -------
    y2 : ndarray
        ``y`` viewed as (N, C).
    t2 : ndarray
        Dense targets as (N, C) cast to ``y.dtype`` if ``dense``, else labels as (N,) intp.
    dense : bool
        Whether ``t`` holds dense targets.
    """
    t = np.asarray(t)
    if y.ndim == 1:
        y2 = y.reshape(1, -1)
        dense = t.size == y.size and t.ndim >= 1
    elif y.ndim == 2:
        y2 = y
        dense = t.shape == y.shape
    else:
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    if dense:
        # Targets are data, not parameters: they take the dtype of the scores so
        # that a float32 network with float64 one-hot labels stays float32.
        return y2, t.reshape(y2.shape).astype(y.dtype, copy=False), True
    labels = t.reshape(-1)
    if labels.shape[0] != y2.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"t must be integer labels of shape ({y2.shape[0]},) or dense targets of shape "
            f"{y.shape}, got shape {t.shape} and dtype {t.dtype}"
        )
    return y2, labels.astype(np.intp, copy=False), False


def numerical_gradient(f, x):
    """Central-difference gradient of a scalar function ``f`` at ``x`` (h = 1e-4).

    Each element of ``x`` is perturbed in place by ``+h`` and ``-h`` and then
    restored, so ``f`` may ignore its argument and read ``x`` through a closure
    (as in the book's ``lambda w: net.loss(x, t)``).

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar.
    x : ndarray
        Point at which to differentiate; modified during the call and restored.

    Returns
    -------
    ndarray
        ``df/dx``, same shape and dtype as ``x``.
    """
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        saved = x[idx].copy()
        x[idx] = saved + h
        f_plus = f(x)
        x[idx] = saved - h
        f_minus = f(x)
        grad[idx] = (f_plus - f_minus) / (2 * h)
        x[idx] = saved
        it.iternext()
    return grad


# ======================================================================================================
# optimizers (book: common/optimizer.py)


def adam_lr_t(lr, beta1, beta2, t):
    """The book's bias-corrected Adam step size ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` (a Python float)."""
    # math.sqrt keeps lr_t a Python float: a NumPy float64 scalar would
    # promote float32 parameters' intermediates to float64.
    return lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
