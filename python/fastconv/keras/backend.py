"""Session state of ``fastconv.keras``: layer names, floatx, image data format, the random generator.

Keras 3 names: ``clear_session``, ``floatx`` / ``set_floatx``, ``image_data_format`` /
``set_image_data_format``, ``epsilon``. ``fastconv.keras.utils.set_random_seed`` reseeds the generator that
weight initialisers, dropout masks and ``fit``'s shuffling draw from.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "clear_session",
    "epsilon",
    "floatx",
    "get_uid",
    "image_data_format",
    "set_floatx",
    "set_image_data_format",
]

_FLOATX = "float32"
_DATA_FORMAT = "channels_last"
_UIDS: dict = {}
_RNG = np.random.default_rng()


def floatx() -> str:
    """The default float type of weights and inputs: ``'float32'`` (Keras' default) or ``'float64'``."""
    return _FLOATX


def set_floatx(value) -> None:
    """Set :func:`floatx`; fastconv's kernels exist for ``'float32'`` and ``'float64'``."""
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(
            f"Unknown `floatx` value: {value!r}. Expected one of {{'float32', 'float64'}} "
            "(fastconv has kernels for these two)"
        )
    _FLOATX = str(value)


def image_data_format() -> str:
    """``'channels_last'`` (Keras' default: images are (N, H, W, C)) or ``'channels_first'``."""
    return _DATA_FORMAT


def set_image_data_format(data_format) -> None:
    """Set the default ``data_format`` of image layers and inputs."""
    global _DATA_FORMAT
    _DATA_FORMAT = standardize_data_format(data_format)


def standardize_data_format(data_format):
    """``None`` -> the default; else ``'channels_last'`` / ``'channels_first'`` or Keras' ValueError."""
    if data_format is None:
        return _DATA_FORMAT
    fmt = str(data_format).lower()
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return fmt


def epsilon() -> float:
    """Keras' fuzz factor, 1e-7."""
    return 1e-7


def to_snake_case(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``, ``ReLU`` -> ``re_lu`` (as Keras)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def get_uid(prefix: str) -> int:
    """1, 2, 3, ... per prefix, within the session."""
    _UIDS[prefix] = _UIDS.get(prefix, 0) + 1
    return _UIDS[prefix]


def unique_name(prefix: str) -> str:
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``, ... as Keras names layers and models."""
    n = get_uid(prefix)
    return prefix if n == 1 else f"{prefix}_{n - 1}"


def clear_session() -> None:
    """Reset the layer-name counters (the next ``Conv2D`` is named ``conv2d`` again)."""
    _UIDS.clear()


def rng() -> np.random.Generator:
    """The session's generator (initialisers, dropout keys, shuffling)."""
    return _RNG


def seed(value) -> None:
    """Reseed the session's generator (see ``fastconv.keras.utils.set_random_seed``)."""
    global _RNG
    _RNG = np.random.default_rng(value)
