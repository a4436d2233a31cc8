"""Networks of the book and of the Keras / d2l tutorials, built on fastconv.layers (or any module with the
book's layer classes), plus the registry the ``fastconv`` command picks them from.

``SimpleConvNet`` (ch07), ``DeepConvNet`` (ch08), ``MultiLayerNet`` / ``MultiLayerNetExtend`` (ch06),
``LeNet`` (d2l), ``KerasCNN`` (the Keras MNIST convnet example) and the ``Sequential`` container they use;
``VGG``, ``ResNet``, ``MobileNet`` and ``InceptionNet`` (ch08 and the tutorials' networks, on the blocks of
:mod:`fastconv.models.graph`) and the DCGAN of :mod:`fastconv.models.dcgan`.
"""

from __future__ import annotations

import numpy as np

from .convnets import DeepConvNet, SimpleConvNet
from .inception import InceptionNet
from .mobilenet import MobileNet
from .multilayer import MultiLayerNet, MultiLayerNetExtend
from .sequential import (
    KerasCNN,
    LeNet,
    Sequential,
    affine,
    avg_pool,
    batch_norm,
    conv,
    dropout,
    max_pool,
    relu,
    sigmoid,
)
from .resnet import ResNet
from .vgg import VGG

__all__ = [
    "SimpleConvNet",
    "DeepConvNet",
    "LeNet",
    "KerasCNN",
    "VGG",
    "ResNet",
    "MobileNet",
    "InceptionNet",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "Sequential",
    "conv",
    "affine",
    "relu",
    "sigmoid",
    "max_pool",
    "avg_pool",
    "dropout",
    "batch_norm",
    "MODELS",
    "build",
]

# The image models the CLI can train; each takes (N, 1, 28, 28) input (load_mnist(flatten=False)).
MODELS = {
    "deepconvnet": DeepConvNet,
    "simpleconvnet": SimpleConvNet,
    "lenet": LeNet,
    "kerascnn": KerasCNN,
    "vgg": VGG,
    "resnet": ResNet,
    "mobilenet": MobileNet,
    "inception": InceptionNet,
}


def build(name, dtype=np.float32, seed=None, **kwargs):
    """Construct a registered model by name.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` (case-insensitive): ``'deepconvnet'``, ``'simpleconvnet'``, ``'lenet'``,
        ``'kerascnn'``, ``'vgg'``, ``'resnet'``, ``'mobilenet'``, ``'inception'``.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    seed : int, optional
        Seed of the weight initialisation: the same seed gives the same parameters. NumPy's global
        generator, which the models draw from as the book's do, is restored afterwards, so the seed does not
        change the caller's random stream. ``None`` draws from that stream.
    **kwargs
        Passed to the model's constructor (e.g. ``layers=fastconv.reference.layers``).

    Returns
    -------
    object
        The network.

    Raises
    ------
    ValueError
        Unknown name (the message lists the choices) or invalid seed.
    TypeError
        ``name`` is not a str.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"name: unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls = MODELS[key]
    if seed is None:
        return cls(dtype=dtype, **kwargs)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an int in [0, 2**32), got {seed!r}")
    state = np.random.get_state()
    try:
        np.random.seed(int(seed))
        return cls(dtype=dtype, **kwargs)
    finally:
        np.random.set_state(state)
