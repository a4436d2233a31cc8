"""Keras utilities: ``to_categorical``, ``set_random_seed``."""

from __future__ import annotations

import random

import numpy as np

from . import backend

__all__ = ["set_random_seed", "to_categorical"]


def to_categorical(x, num_classes=None):
    """One-hot rows of the class indices ``x`` (Keras' ``to_categorical``).

    Parameters
    ----------
    x : array_like of int
        Class indices in [0, num_classes); a trailing axis of size 1 is dropped, as Keras does.
    num_classes : int, optional
        Number of classes; ``max(x) + 1`` when omitted.

    Returns
    -------
    ndarray of float64 (as Keras' NumPy version), shape ``x.shape + (num_classes,)``.
    """
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.array_equal(x, np.floor(x)):
            raise ValueError("to_categorical: class indices must be integers")
    elif x.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: expected integer class indices, got dtype {x.dtype}")
    x = x.astype(np.int64)
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    x = x.reshape(-1)
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    num_classes = int(num_classes)
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        bad = int(x.min()) if x.min() < 0 else int(x.max())
        raise ValueError(f"to_categorical: class index {bad} is out of range [0, {num_classes})")
    out = np.zeros((x.size, num_classes))
    out[np.arange(x.size), x] = 1.0
    return out.reshape(*shape, num_classes)


def set_random_seed(seed) -> None:
    """Seed Python's ``random``, NumPy's global generator and fastconv.keras's generator (initialisers,
    dropout masks, shuffling), as ``keras.utils.set_random_seed`` seeds Python, NumPy and the backend."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"Expected `seed` argument to be an integer. Received: seed={seed} (of type {type(seed)})"
        )
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    backend.seed(int(seed))
