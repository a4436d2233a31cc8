"""Reference activations, losses and finite-difference gradients (book: ``common/functions.py``).

Plain NumPy. Every function follows the dtype of its floating input (float32 in,
float32 out); integer inputs are computed in float64.
"""
import numpy as np

__all__ = ["sigmoid", "relu", "softmax", "cross_entropy_error", "numerical_gradient"]

# Added inside the log of the cross-entropy so that a zero probability gives a
# large finite loss instead of -log(0) = inf (the book's constant).
_LOG_EPS = 1e-7


# ============================================================================
# helpers
# ============================================================================

def _as_float(x):
    """Return ``x`` as an ndarray, keeping floating dtypes and promoting others to float64."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _targets(y, t):
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


# ============================================================================
# finite differences
# ============================================================================

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
