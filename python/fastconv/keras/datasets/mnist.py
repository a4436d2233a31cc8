"""MNIST as ``keras.datasets.mnist.load_data()`` returns it."""

from __future__ import annotations

from ... import datasets as _datasets
from ._common import keras_shapes

__all__ = ["load_data"]


def load_data(path=None):
    """((x_train, y_train), (x_test, y_test)): uint8 images (60000, 28, 28) / (10000, 28, 28), uint8 labels.

    Parameters
    ----------
    path : str, optional
        A directory holding the four IDX files; otherwise ``fastconv.datasets.load_mnist`` looks in
        ``$FASTCONV_DATA``, the user cache and ``/usr/share/datasets/mnist``, then downloads (verified).
        (Keras'
        ``path`` names a cache file ``mnist.npz``; a path ending in ``.npz`` is ignored here.)
    """
    if path is not None and str(path).endswith(".npz"):
        path = None
    return keras_shapes(_datasets.load_mnist(normalize=False, flatten=False, path=path))
