"""Keras activation names mapped onto fastconv's kernels.

``relu``, ``sigmoid``, ``tanh``, ``leaky_relu`` (negative slope 0.2, as ``keras.activations.leaky_relu``),
``softmax`` and ``linear`` (also ``None``) run on ``fastconv.ops``. Keras' other activations (``elu``, ``gelu``,
``swish``, ...) need kernels fastconv does not have yet: naming
one raises ``NotImplementedError`` saying so; an unknown name raises Keras' ``ValueError``. The functions here
can also be called on arrays (``fastconv.keras.activations.relu(x)``), as Keras' can.
"""

from __future__ import annotations

import numpy as np

from .. import ops

__all__ = ["get", "leaky_relu", "linear", "relu", "serialize", "sigmoid", "softmax", "tanh"]

# keras.activations.leaky_relu's default negative slope (the LeakyReLU layer's is 0.3)
LEAKY_SLOPE = 0.2

# Keras 3 activations without a fastconv kernel (yet)
_NO_KERNEL = (
    "elu",
    "selu",
    "softplus",
    "softsign",
    "gelu",
    "swish",
    "silu",
    "relu6",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "exponential",
    "log_softmax",
    "mish",
    "celu",
    "glu",
    "log_sigmoid",
    "hard_tanh",
    "sparse_plus",
    "soft_shrink",
    "hard_shrink",
    "tanh_shrink",
    "squareplus",
    "sparsemax",
    "threshold",
)


def relu(x):
    """max(x, 0)."""
    return ops.relu_forward(x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return ops.sigmoid_forward(x)


def tanh(x):
    """The hyperbolic tangent."""
    return ops.tanh_forward(x)


def leaky_relu(x, negative_slope=LEAKY_SLOPE):
    """x for x >= 0, negative_slope * x below."""
    return ops.leaky_relu_forward(x, negative_slope)


def softmax(x, axis=-1):
    """Softmax over the last axis (the only axis fastconv's kernel takes)."""
    x = np.asarray(x)
    if axis not in (-1, x.ndim - 1):
        raise NotImplementedError(
            f"softmax: axis={axis} is not supported; fastconv's softmax kernel works on the "
            "last axis (axis=-1)"
        )
    return ops.softmax(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def linear(x):
    """The identity."""
    return x


_FUNCS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "leaky_relu": leaky_relu, "softmax": softmax,
          "linear": linear}


def get(identifier) -> str:
    """The canonical name (``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'leaky_relu'``, ``'softmax'``, ``'linear'``) of
    an activation given by name, by one of this module's functions, or ``None`` (linear)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        if identifier in _FUNCS:
            return identifier
        if identifier in _NO_KERNEL:
            raise NotImplementedError(
                f"activation {identifier!r} needs a kernel fastconv does not have yet; "
                f"available: {', '.join(_FUNCS)}"
            )
    for name, f in _FUNCS.items():
        if identifier is f:
            return name
    if callable(identifier):
        raise NotImplementedError(
            f"activation {identifier!r}: only fastconv.keras.activations "
            f"({', '.join(_FUNCS)}) run on fastconv's kernels"
        )
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(name: str) -> str:
    """The name stored in a layer's config."""
    return name
