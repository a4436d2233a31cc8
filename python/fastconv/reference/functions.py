"""Reference activations, losses and finite-difference gradients (book: ``common/functions.py``).

Plain NumPy. Every function follows the dtype of its floating input (float32 in,
float32 out); integer inputs are computed in float64.
"""
import numpy as np

# shared with fastconv.functions (fastconv/_helpers.py): the reference imports them, never the reverse
from .._helpers import as_float as _as_float
from .._helpers import numerical_gradient
from .._helpers import parse_targets as _targets

__all__ = ["sigmoid", "relu", "softmax", "cross_entropy_error", "numerical_gradient"]

# Added inside the log of the cross-entropy so that a zero probability gives a
# large finite loss instead of -log(0) = inf (the book's constant).
_LOG_EPS = 1e-7


# ============================================================================
# activations
# ============================================================================

def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` in a form that never overflows.

    For ``x >= 0`` it computes ``1 / (1 + exp(-x))``, for ``x < 0``
    ``exp(x) / (1 + exp(x))``, so ``exp`` only ever sees non-positive arguments.

    Parameters
    ----------
    x : array_like
        Input of any shape.

    Returns
    -------
    ndarray
        Sigmoid of ``x``, same shape and (floating) dtype.
    """
    x = _as_float(x)
    out = np.empty_like(x)
    pos = x >= 0
    neg = ~pos  # NaN lands here and propagates as NaN without a warning
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[neg])
    out[neg] = e / (1 + e)
    return out


def relu(x):
    """Rectified linear unit ``max(0, x)``.

    Parameters
    ----------
    x : array_like
        Input of any shape.

    Returns
    -------
    ndarray
        ``np.maximum(0, x)``, same shape and dtype as ``x``.
    """
    x = np.asarray(x)
    return np.maximum(x.dtype.type(0), x)


def softmax(x):
    """Softmax over the last axis (a 1-D vector or each row of a 2-D batch).

    The row maximum is subtracted first, so large inputs do not overflow.

    Parameters
    ----------
    x : array_like
        Scores, shape (C,) or (N, C).

    Returns
    -------
    ndarray
        Probabilities of the same shape and dtype; each row sums to 1.
    """
    x = _as_float(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ============================================================================
# loss
# ============================================================================

def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities ``y`` against labels or dense targets ``t``.

    Integer labels ``t`` (shape (N,)) give ``-sum(log(y[arange(N), t] + 1e-7)) / N``;
    dense targets with the shape of ``y`` (one-hot or probabilities) give
    ``-sum(t * log(y + 1e-7)) / N``. A 1-D ``y`` is a batch of one.

    Parameters
    ----------
    y : array_like
        Probabilities, shape (C,) or (N, C).
    t : array_like
        Integer labels of shape (N,), or dense targets of the shape of ``y``.

    Returns
    -------
    numpy scalar
        The loss, in the dtype of ``y``.
    """
    y2, t2, dense = _targets(_as_float(y), t)
    n = y2.shape[0]
    if dense:
        return -np.sum(t2 * np.log(y2 + _LOG_EPS)) / n
    return -np.sum(np.log(y2[np.arange(n), t2] + _LOG_EPS)) / n
