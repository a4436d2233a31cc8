"""Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data()`` returns it."""

from __future__ import annotations

from ... import datasets as _datasets
from ._common import keras_shapes

__all__ = ["load_data"]


def load_data(path=None):
    """((x_train, y_train), (x_test, y_test)): uint8 images (60000, 28, 28) / (10000, 28, 28), uint8 labels.

    Parameters
    ----------
    path : str, optional
        A directory holding the four IDX files; otherwise ``fastconv.datasets.load_fashion_mnist`` looks in
        ``$FASTCONV_DATA``, the user cache and ``/usr/share/datasets/fashion-mnist`` (Debian's
        ``dataset-fashion-mnist``), then downloads (verified).
    """
    return keras_shapes(_datasets.load_fashion_mnist(normalize=False, flatten=False, path=path))
