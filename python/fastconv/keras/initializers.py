"""Keras 3 weight initialisers (names, arguments and defaults), drawing from NumPy generators.

``glorot_uniform`` is Keras' default kernel initialiser: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), with
Keras' fans: a kernel of shape (kh, kw, in, out) has fan_in = kh*kw*in and fan_out = kh*kw*out. The normal
variants are truncated at two standard deviations and rescaled by 1/0.8796 as Keras' are. Without ``seed``
an initialiser draws from the session generator (``fastconv.keras.utils.set_random_seed``).
"""

from __future__ import annotations

import math

import numpy as np

from . import backend

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "get",
    "serialize",
]

# stddev of a standard normal truncated to [-2, 2]: Keras divides by it, so the truncated draw keeps the
# variance
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a Keras-layout weight shape (Dense (in, out), Conv2D (kh, kw, in, out))."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype=None)`` returns a new ndarray of that (Keras-layout) shape."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"`seed` argument should be an instance of `int` or None. Received: seed={seed}")
        self.seed = seed
        self._gen = None if seed is None else np.random.default_rng(int(seed))

    def _rng(self) -> np.random.Generator:
        return backend.rng() if self._gen is None else self._gen

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _truncated(self, shape, stddev, mean=0.0):
        g = self._rng()
        out = g.standard_normal(shape)
        bad = np.abs(out) > 2.0
        while bad.any():  # redraw outside two standard deviations (truncated normal)
            out[bad] = g.standard_normal(int(bad.sum()))
            bad = np.abs(out) > 2.0
        return out * stddev + mean


def _dtype(dtype):
    return np.dtype(backend.floatx() if dtype is None else dtype)


class Zeros(Initializer):
    """All zeros."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=_dtype(dtype))

    def get_config(self):
        return {}


class Ones(Initializer):
    """All ones."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=_dtype(dtype))

    def get_config(self):
        return {}


class Constant(Initializer):
    """All ``value``."""

    def __init__(self, value=0.0):
        super().__init__(None)
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=_dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """N(mean, stddev**2); Keras' defaults mean=0.0, stddev=0.05."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return (self._rng().standard_normal(shape) * self.stddev + self.mean).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """N(mean, stddev**2) truncated to two standard deviations; Keras' defaults mean=0.0, stddev=0.05."""

    def __call__(self, shape, dtype=None):
        return self._truncated(shape, self.stddev, self.mean).astype(_dtype(dtype))


class RandomUniform(Initializer):
    """U(minval, maxval); Keras' defaults -0.05, 0.05."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return self._rng().uniform(self.minval, self.maxval, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance ``scale / n`` with n = fan_in, fan_out or their mean."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if not scale > 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(
                "Invalid `mode` argument: expected one of {'fan_in', 'fan_out', 'fan_avg'}. "
                f"Received: mode={mode}"
            )
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                "Invalid `distribution` argument: expected one of {'truncated_normal', "
                f"'untruncated_normal', 'uniform'}}. Received: distribution={distribution}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            out = self._rng().uniform(-limit, limit, shape)
        elif self.distribution == "truncated_normal":
            out = self._truncated(shape, math.sqrt(var) / _TRUNC_STD)
        else:
            out = self._rng().standard_normal(shape) * math.sqrt(var)
        return out.astype(_dtype(dtype))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _preset(name, scale, mode, distribution, doc):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


GlorotUniform = _preset(
    "GlorotUniform",
    1.0,
    "fan_avg",
    "uniform",
    "U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); Keras' default.",
)
GlorotNormal = _preset(
    "GlorotNormal",
    1.0,
    "fan_avg",
    "truncated_normal",
    "Truncated normal, stddev sqrt(2 / (fan_in + fan_out)).",
)
HeNormal = _preset(
    "HeNormal", 2.0, "fan_in", "truncated_normal", "Truncated normal, stddev sqrt(2 / fan_in)."
)
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform", "U(-a, a), a = sqrt(6 / fan_in).")
LecunNormal = _preset(
    "LecunNormal", 1.0, "fan_in", "truncated_normal", "Truncated normal, stddev sqrt(1 / fan_in)."
)
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform", "U(-a, a), a = sqrt(3 / fan_in).")


class Orthogonal(Initializer):
    """``Orthogonal(gain=1.0, seed=None)``: a random orthogonal matrix (Saxe et al. 2014) of shape (rows,
    cols), rows = the product of every axis but the last, from the QR decomposition of a standard normal draw
    with the signs of R's diagonal folded into Q (so Q is uniform over orthogonal matrices), times ``gain``;
    Keras' default recurrent kernel initialiser."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError(
                f"The tensor to initialize must be at least two-dimensional. Received: shape={shape} of rank "
                f"{len(shape)}."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


_ALL = {
    cls.__name__: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        RandomNormal,
        RandomUniform,
        TruncatedNormal,
        VarianceScaling,
        GlorotUniform,
        GlorotNormal,
        HeNormal,
        HeUniform,
        LecunNormal,
        LecunUniform,
        Orthogonal,
    )
}
_BY_NAME = {backend.to_snake_case(k): v for k, v in _ALL.items()}
_BY_NAME.update(
    {"zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": RandomUniform, "normal": RandomNormal}
)


def get(identifier):
    """An initialiser from a name (``'glorot_uniform'``, ``'GlorotUniform'``), a config dict, an instance or a
    callable; ``None`` stays ``None``."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _ALL.get(identifier)
        if cls is not None:
            return cls()
    elif isinstance(identifier, dict) and identifier.get("class_name") in _ALL:
        return _ALL[identifier["class_name"]].from_config(identifier.get("config", {}))
    elif callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier}")


def serialize(init) -> dict:
    """``{'class_name': ..., 'config': ...}`` of a built-in initialiser (for ``model.save``)."""
    if not isinstance(init, Initializer) or type(init).__name__ not in _ALL:
        raise ValueError(
            f"cannot serialize the initializer {init!r}: only fastconv.keras.initializers are saved"
        )
    return {"class_name": type(init).__name__, "config": init.get_config()}
