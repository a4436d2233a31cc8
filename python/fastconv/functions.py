"""The book's free functions (``common/functions.py``, plus ``numerical_gradient`` of ``common/gradient.py``).

Activations and softmax run on fastconv's kernels; the rest are NumPy one-liners (``numerical_gradient`` and the
target parsing come from ``fastconv._helpers``, which the reference shares).
"""

from __future__ import annotations

import numpy as np

from . import ops
from ._helpers import as_float, numerical_gradient, parse_targets

__all__ = [
    "identity_function",
    "step_function",
    "sigmoid",
    "sigmoid_grad",
    "relu",
    "relu_grad",
    "softmax",
    "mean_squared_error",
    "cross_entropy_error",
    "softmax_loss",
    "numerical_gradient",
]


def identity_function(x):
    """Return ``x`` unchanged."""
    return x


def step_function(x):
    """1 where x > 0, else 0 (int array)."""
    return np.array(np.asarray(x) > 0, dtype=int)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    return ops.sigmoid_forward(x)


def sigmoid_grad(x):
    """Derivative of the sigmoid at ``x``: ``(1 - s) * s``."""
    s = ops.sigmoid_forward(x)
    return (1.0 - s) * s


def relu(x):
    """``max(0, x)`` elementwise."""
    return ops.relu_forward(x)


def relu_grad(x):
    """Derivative of ReLU: 1 where x >= 0, else 0 (the book's convention at 0)."""
    x = ops.as_array(x, "x")
    return (x >= 0).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def softmax(x):
    """Row-wise softmax of a 1-D or 2-D array."""
    return ops.softmax(x)


def mean_squared_error(y, t):
    """``0.5 * sum((y - t) ** 2)``."""
    return 0.5 * np.sum((np.asarray(y) - np.asarray(t)) ** 2)


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities ``y`` against integer labels (N,) or targets of ``y``'s shape.

    The reference formula (``-sum(log(y[label] + 1e-7)) / N``), after checking that every label is in
    [0, K): NumPy indexing would raise an IndexError for a label >= K and silently read another class for a
    negative one.
    """
    y2, t2, dense = parse_targets(as_float(ops.as_array(y, "y")), t)
    n = y2.shape[0]
    if dense:
        return -np.sum(t2 * np.log(y2 + 1e-7)) / n
    ops.check_labels(t2, y2.shape[1])
    return -np.sum(np.log(y2[np.arange(n), t2] + 1e-7)) / n


def softmax_loss(X, t):
    """Cross-entropy of softmax(X) against labels or one-hot targets ``t``."""
    return ops.softmax_cross_entropy(X, t)[0]
