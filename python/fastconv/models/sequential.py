"""A small ``Sequential`` container with shape inference, and the LeNet and Keras-example CNNs built on it.

A network is a list of layer specs (``conv(6, 5, pad=2)``, ``sigmoid()``, ``avg_pool(2)``, ``affine(120)``,
...) and an input shape. The container infers every layer's input shape, so an ``affine`` only names its
output size, and builds the book's objects: a ``params`` dict ``W1, b1, W2, ...`` (``gammaK, betaK`` for
batch norm) numbered in layer order, an ``OrderedDict`` of layers named like the book's (``Conv1``,
``Relu1``, ``Pool1``, ``Affine1``, ...) and a ``SoftmaxWithLoss`` last layer, with the book's methods
(``predict(x, train_flg=False)``, ``loss``, ``accuracy``, ``gradient``, ``save_params``, ``load_params``).

Weights are drawn from NumPy's global generator (``np.random.seed`` makes them repeatable, as in the book):
``init="xavier"`` is Glorot uniform, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010;
a convolution has fan_in = C*FH*FW, fan_out = FN*FH*FW), ``init="he"`` is N(0, 2 / fan_in) (He et al. 2015).
Biases and ``beta`` start at zero, ``gamma`` at one.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._checks import conv_output_size
from ._base import Net, forward_layer, layers_module

__all__ = [
    "Sequential",
    "LeNet",
    "KerasCNN",
    "conv",
    "affine",
    "relu",
    "sigmoid",
    "max_pool",
    "avg_pool",
    "dropout",
    "batch_norm",
]


# ======================================================================================================
# layer specs


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def conv(filter_num, filter_size, stride=1, pad=0):
    """Spec of a ``Convolution`` with ``filter_num`` square ``filter_size`` filters."""
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad: expected an int >= 0, got {pad!r}")
    return ("conv", {"filter_num": _positive_int(filter_num, "filter_num"),
                     "filter_size": _positive_int(filter_size, "filter_size"),
                     "stride": _positive_int(stride, "stride"), "pad": int(pad)})


def affine(output_size):
    """Spec of an ``Affine`` layer with ``output_size`` outputs (its input size is inferred)."""
    return ("affine", {"output_size": _positive_int(output_size, "output_size")})


def relu():
    """Spec of a ``Relu``."""
    return ("relu", {})


def sigmoid():
    """Spec of a ``Sigmoid``."""
    return ("sigmoid", {})


def max_pool(size, stride=None):
    """Spec of a max ``Pooling`` over ``size`` x ``size`` windows (``stride`` defaults to ``size``)."""
    size = _positive_int(size, "size")
    return ("max_pool", {"size": size, "stride": size if stride is None else _positive_int(stride, "stride")})


def avg_pool(size, stride=None):
    """Spec of an ``AvgPooling`` over ``size`` x ``size`` windows (``stride`` defaults to ``size``)."""
    size = _positive_int(size, "size")
    return ("avg_pool", {"size": size, "stride": size if stride is None else _positive_int(stride, "stride")})


def dropout(dropout_ratio=0.5):
    """Spec of a ``Dropout``."""
    if not 0.0 <= float(dropout_ratio) < 1.0:
        raise ValueError(f"dropout_ratio: expected a value in [0, 1), got {dropout_ratio!r}")
    return ("dropout", {"dropout_ratio": float(dropout_ratio)})


def batch_norm(momentum=0.9):
    """Spec of a ``BatchNormalization`` over the flattened features (the book's form)."""
    return ("batch_norm", {"momentum": float(momentum)})


# layer-name prefixes, as the book names its layers
_PREFIX = {"conv": "Conv", "affine": "Affine", "relu": "Relu", "sigmoid": "Sigmoid", "max_pool": "Pool",
           "avg_pool": "AvgPool", "dropout": "Dropout", "batch_norm": "BatchNorm"}
INITS = ("xavier", "he")


# ======================================================================================================
# container


class Sequential(Net):
    """A stack of the book's layers with a ``SoftmaxWithLoss`` on top, built from specs with shape inference.

    Parameters
    ----------
    input_dim : int or tuple of int
        Shape of one sample: ``(C, H, W)`` for images, ``D`` or ``(D,)`` for vectors.
    specs : list
        Layer specs from :func:`conv`, :func:`affine`, :func:`relu`, :func:`sigmoid`, :func:`max_pool`,
        :func:`avg_pool`, :func:`dropout`, :func:`batch_norm`, in order.
    init : {"xavier", "he"}, optional
        Weight initialisation: Glorot uniform or He normal (see the module docstring).
    dtype : numpy dtype, optional
        dtype of the parameters (float32 by default).
    layers : module, optional
        Module providing the layer classes; :mod:`fastconv.layers` by default,
        :mod:`fastconv.reference.layers` for the pure-NumPy network.

    Attributes
    ----------
    params : dict of str -> ndarray
        ``W1, b1, ...`` in layer order, ``gamma1, beta1, ...`` for batch-norm layers.
    layers : OrderedDict
        The layers by name (``Conv1``, ``Relu1``, ``Pool1``, ``Affine1``, ...).
    shapes : OrderedDict
        Each layer's output shape for one sample, as inferred.
    last_layer : SoftmaxWithLoss
    """

    def __init__(self, input_dim, specs, init="xavier", dtype=np.float32, layers=None):
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        L = layers_module(layers)
        shape = self._input_shape(input_dim)
        self.input_dim = shape
        self._dtype = np.dtype(dtype)
        self.params = {}
        self.layers = OrderedDict()
        self.shapes = OrderedDict()
        self._slots = {}  # param name -> (layer, attribute): where _bind_params and gradient look
        self._bn = {}  # batch-norm index -> layer
        counts = dict.fromkeys(_PREFIX, 0)
        n_weight = n_bn = 0
        for i, spec in enumerate(specs):
            try:
                kind, kw = spec
            except (TypeError, ValueError):
                raise TypeError(f"specs[{i}]: expected a layer spec such as conv(6, 5), got {spec!r}") \
                    from None
            if kind not in _PREFIX:
                raise ValueError(f"specs[{i}]: unknown layer kind {kind!r}; "
                                 f"expected one of {sorted(_PREFIX)}")
            counts[kind] += 1
            name = _PREFIX[kind] + str(counts[kind])
            if kind == "conv":
                if len(shape) != 3:
                    raise ValueError(f"specs[{i}] ({name}): convolution needs (C, H, W) input, got {shape}")
                C, H, W = shape
                FN, FS, s, p = kw["filter_num"], kw["filter_size"], kw["stride"], kw["pad"]
                OH, OW = conv_output_size(H, FS, s, p), conv_output_size(W, FS, s, p)
                if H + 2 * p < FS or W + 2 * p < FS:
                    raise ValueError(f"specs[{i}] ({name}): {FS}x{FS} filter larger than the padded input "
                                     f"{shape} (pad {p})")
                n_weight += 1
                Wk, bk = "W" + str(n_weight), "b" + str(n_weight)
                self.params[Wk] = self._weight((FN, C, FS, FS), C * FS * FS, FN * FS * FS, init)
                self.params[bk] = np.zeros(FN, dtype=self._dtype)
                layer = L.Convolution(self.params[Wk], self.params[bk], s, p)
                self._slots[Wk], self._slots[bk] = (layer, "W"), (layer, "b")
                shape = (FN, OH, OW)
            elif kind == "affine":
                D, M = int(np.prod(shape)), kw["output_size"]
                n_weight += 1
                Wk, bk = "W" + str(n_weight), "b" + str(n_weight)
                self.params[Wk] = self._weight((D, M), D, M, init)
                self.params[bk] = np.zeros(M, dtype=self._dtype)
                layer = L.Affine(self.params[Wk], self.params[bk])
                self._slots[Wk], self._slots[bk] = (layer, "W"), (layer, "b")
                shape = (M,)
            elif kind in ("max_pool", "avg_pool"):
                if len(shape) != 3:
                    raise ValueError(f"specs[{i}] ({name}): pooling needs (C, H, W) input, got {shape}")
                C, H, W = shape
                size, s = kw["size"], kw["stride"]
                if H < size or W < size:
                    raise ValueError(f"specs[{i}] ({name}): {size}x{size} window larger than the "
                                     f"input {shape}")
                cls = L.Pooling if kind == "max_pool" else L.AvgPooling
                layer = cls(pool_h=size, pool_w=size, stride=s)
                shape = (C, conv_output_size(H, size, s), conv_output_size(W, size, s))
            elif kind == "batch_norm":
                D = int(np.prod(shape))
                n_bn += 1
                gk, bk = "gamma" + str(n_bn), "beta" + str(n_bn)
                self.params[gk] = np.ones(D, dtype=self._dtype)
                self.params[bk] = np.zeros(D, dtype=self._dtype)
                layer = L.BatchNormalization(self.params[gk], self.params[bk], momentum=kw["momentum"])
                self._slots[gk], self._slots[bk] = (layer, "gamma"), (layer, "beta")
                self._bn[n_bn] = layer
            elif kind == "dropout":
                layer = L.Dropout(kw["dropout_ratio"])
            else:
                layer = L.Relu() if kind == "relu" else L.Sigmoid()
            self.layers[name] = layer
            self.shapes[name] = shape
        if not self.params:
            raise ValueError("specs: the network needs at least one conv or affine layer")
        self.output_size = int(np.prod(shape))
        self.last_layer = L.SoftmaxWithLoss()

    @staticmethod
    def _input_shape(input_dim):
        dims = (input_dim,) if isinstance(input_dim, (int, np.integer)) else tuple(input_dim)
        if len(dims) not in (1, 3) or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims
        ):
            raise ValueError(f"input_dim: expected D or (C, H, W) of positive ints, got {input_dim!r}")
        return tuple(int(d) for d in dims)

    def _weight(self, shape, fan_in, fan_out, init):
        if init == "xavier":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            w = np.random.uniform(-bound, bound, size=shape)
        else:
            w = np.sqrt(2.0 / fan_in) * np.random.randn(*shape)
        return w.astype(self._dtype)

    def _bind_params(self):
        for key, (layer, attr) in self._slots.items():
            setattr(layer, attr, self.params[key])

    def _buffers(self):
        out = {}
        for j, layer in self._bn.items():
            like = self.params["gamma" + str(j)]
            out["running_mean" + str(j)] = (layer, "running_mean", like)
            out["running_var" + str(j)] = (layer, "running_var", like)
        return out

    def predict(self, x, train_flg=False):
        """Scores (before softmax), shape (N, output_size); ``train_flg`` drives dropout and batch norm."""
        return self._forward(x, lambda name, layer, x: forward_layer(layer, x, train_flg))

    def gradient(self, x, t):
        """Gradients of ``loss(x, t)`` by backpropagation, keyed like ``params``."""
        self.loss(x, t)
        self._backprop(self.last_layer.backward(1))
        return {key: getattr(layer, "d" + attr) for key, (layer, attr) in self._slots.items()}


# ======================================================================================================
# networks


class LeNet(Sequential):
    """LeNet-5 as in d2l's "LeNet" chapter: sigmoid activations and average pooling, Xavier-uniform weights.

    conv 6@5x5 pad 2 - Sigmoid - AvgPool 2 - conv 16@5x5 - Sigmoid - AvgPool 2 - Affine 400-120 - Sigmoid -
    Affine 120-84 - Sigmoid - Affine 84-10 - SoftmaxWithLoss. Input (N, 1, 28, 28).

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, dtype=np.float32, layers=None):
        specs = [conv(6, 5, pad=2), sigmoid(), avg_pool(2),
                 conv(16, 5), sigmoid(), avg_pool(2),
                 affine(120), sigmoid(), affine(84), sigmoid(), affine(output_size)]
        super().__init__(input_dim, specs, init="xavier", dtype=dtype, layers=layers)


class KerasCNN(Sequential):
    """The Keras MNIST convnet example: two 3x3 convolutions, max-pool, dense 128, dense 10; Glorot uniform.

    conv 32@3x3 (valid) - Relu - conv 64@3x3 - Relu - Pool 2 - Affine 9216-128 - Relu - Affine 128-10 -
    SoftmaxWithLoss. Input (N, 1, 28, 28).

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, dtype=np.float32, layers=None):
        specs = [conv(32, 3), relu(), conv(64, 3), relu(), max_pool(2),
                 affine(128), relu(), affine(output_size)]
        super().__init__(input_dim, specs, init="xavier", dtype=dtype, layers=layers)
