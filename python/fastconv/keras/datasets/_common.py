"""Keras' ``load_data`` shapes from fastconv's IDX loaders."""

from __future__ import annotations

import numpy as np


def keras_shapes(split):
    """((x_train, y_train), (x_test, y_test)) with uint8 images (N, 28, 28), uint8 labels (N,), as Keras."""
    out = []
    for x, t in split:
        out.append((np.ascontiguousarray(x.reshape(x.shape[0], x.shape[2], x.shape[3])), t.astype(np.uint8)))
    return tuple(out)
