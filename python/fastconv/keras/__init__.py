"""``fastconv.keras``: Keras 3's model-building API on fastconv's kernels.

Code written for ``tensorflow.keras`` / ``keras`` runs after its imports change::

    import fastconv as tf                                   # tf.keras.utils.to_categorical(...)
    from fastconv.keras.models import Sequential
    from fastconv.keras.layers import Conv2D, MaxPooling2D, Dropout, Flatten, Dense
    from fastconv.keras.datasets import fashion_mnist

Keras' names, arguments, defaults (channels-last images, glorot_uniform kernels, Adam epsilon 1e-7,
BatchNormalization momentum 0.99 / epsilon 1e-3, ...), weight layouts, summaries, logs and errors; the
computation is fastconv's (``fastconv.ops``). What needs a kernel fastconv lacks raises
``NotImplementedError`` naming it. Keras itself is not needed.
"""

from . import (
    activations,
    backend,
    callbacks,
    datasets,
    distribution,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    saving,
    utils,
)
from .layers import Input, KerasTensor, Layer
from .models import Model, Sequential

__all__ = [
    "Input",
    "KerasTensor",
    "Layer",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "distribution",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "saving",
    "utils",
]

config = backend  # keras.config.image_data_format(), floatx(), ...
