"""Blocks for networks that are not a single chain of layers: residual blocks (ResNet), parallel branches joined
along the channels (Inception), and the builder that numbers their parameters the book's way.

A block has the layers' interface, ``forward(x, train_flg)`` and ``backward(dout)``:

- :class:`Chain` runs layers (and blocks) in order, through the layers' one-pass fast paths where they offer
  them (a Convolution followed by a Relu), as the book's networks do.
- :class:`Residual` is ``post(body(x) + shortcut(x))``: the shortcut is the identity or a chain (a 1x1 projection
  with batch norm when the body changes the shape), ``post`` a Relu (or nothing); backward sums the two paths'
  input gradients.
- :class:`Branches` runs several chains on the same input and joins their outputs along the channels
  (``Concat``); backward splits the gradient and sums the branches' input gradients.

:class:`GraphNet` is the base of such networks: its builder methods (``conv``, ``bn``, ``affine``, ...) create a
layer with freshly drawn weights and record each parameter under the book's names (``W1, b1, W2, ...`` in the order
the layers are built, ``gamma1, beta1, ...`` for the batch norms, whose running statistics are saved beside the
parameters), so ``params``, ``gradient``, ``save_params`` and ``load_params`` work as in the book's networks, and
the book's optimizers update the same arrays the layers read.
"""

from __future__ import annotations

import numpy as np

from .._checks import conv_output_size
from ._base import TRAIN_FLG_LAYERS, Net, forward_layer, layers_module, run_layers

__all__ = ["Chain", "Residual", "Branches", "GraphNet", "TRAIN_FLG_LAYERS"]

def _forward(layer, x, train_flg):
    if isinstance(layer, (Chain, Residual, Branches)):
        return layer.forward(x, train_flg)
    return forward_layer(layer, x, train_flg)


class Chain:
    """Layers and blocks run in order."""

    def __init__(self, items):
        self.items = list(items)

    def forward(self, x, train_flg=False):
        return run_layers(self.items, x, lambda _, layer, h: _forward(layer, h, train_flg))

    def backward(self, dout):
        for layer in reversed(self.items):
            dout = layer.backward(dout)
        return dout


class Residual:
    """``post(body(x) + shortcut(x))``; ``shortcut`` None is the identity, ``post`` None nothing."""

    def __init__(self, body, shortcut, add, post=None):
        self.body, self.shortcut, self.add, self.post = body, shortcut, add, post

    def forward(self, x, train_flg=False):
        skip = x if self.shortcut is None else self.shortcut.forward(x, train_flg)
        y = self.add.forward(self.body.forward(x, train_flg), skip)
        return y if self.post is None else self.post.forward(y)

    def backward(self, dout):
        if self.post is not None:
            dout = self.post.backward(dout)
        d_body, d_skip = self.add.backward(dout)
        dx = self.body.backward(d_body)
        return dx + (d_skip if self.shortcut is None else self.shortcut.backward(d_skip))


class Branches:
    """Chains run on the same input, their outputs joined by ``concat`` (a ``Concat`` layer)."""

    def __init__(self, branches, concat):
        self.branches, self.concat = list(branches), concat

    def forward(self, x, train_flg=False):
        return self.concat.forward(*(b.forward(x, train_flg) for b in self.branches))

    def backward(self, dout):
        douts = self.concat.backward(dout)
        dx = self.branches[0].backward(douts[0])
        for branch, d in zip(self.branches[1:], douts[1:]):
            dx += branch.backward(d)
        return dx


class GraphNet(Net):
    """The base of the block networks: builders that draw weights and number the parameters, and the book's
    ``predict`` / ``loss`` / ``accuracy`` / ``gradient`` / ``save_params`` / ``load_params`` over ``self.body``.

    Weights: convolutions and hidden affine layers He-normal (N(0, 2 / fan_in), He et al. 2015, for ReLU
    networks), drawn from NumPy's global generator in build order (``np.random.seed`` makes them repeatable, as in
    the book); biases and ``beta`` zero, ``gamma`` one.
    """

    def _start(self, dtype, layers):
        self.L = layers_module(layers)
        self._dtype = np.dtype(dtype)
        self.params = {}
        self._slots = {}  # param name -> (layer, attribute)
        self._bn = []  # (index, layer) of every batch norm, for its running statistics
        self._n_weight = self._n_bn = 0

    # ---- builders

    def _new(self, prefix, value, layer, attr):
        key = prefix + str(self._n_bn if prefix in ("gamma", "beta") else self._n_weight)
        self.params[key] = value
        self._slots[key] = (layer, attr)

    def _he(self, shape, fan_in):
        return (np.sqrt(2.0 / fan_in) * np.random.randn(*shape)).astype(self._dtype)

    def conv(self, c_in, c_out, k, stride=1, pad="same", bias=False, groups=1):
        """A ``Convolution`` of ``c_out`` ``k`` x ``k`` filters over ``c_in`` channels (``groups`` as torch)."""
        W = self._he((c_out, c_in // groups, k, k), c_in // groups * k * k)
        b = np.zeros(c_out, dtype=self._dtype) if bias else None
        layer = self.L.Convolution(W, b, stride=stride, pad=pad, groups=groups)
        self._n_weight += 1
        self._new("W", W, layer, "W")
        if bias:
            self._new("b", b, layer, "b")
        return layer

    def deconv(self, c_in, c_out, k, stride=1, pad=0, output_padding=0, bias=False, std=None):
        """A ``Deconvolution`` (transposed convolution) from ``c_in`` to ``c_out`` channels, W (c_in, c_out, k, k)."""
        fan_in = c_in * k * k // (stride * stride)
        W = (std if std is not None else np.sqrt(2.0 / fan_in)) * np.random.randn(c_in, c_out, k, k)
        W = W.astype(self._dtype)
        b = np.zeros(c_out, dtype=self._dtype) if bias else None
        layer = self.L.Deconvolution(W, b, stride=stride, pad=pad, output_padding=output_padding)
        self._n_weight += 1
        self._new("W", W, layer, "W")
        if bias:
            self._new("b", b, layer, "b")
        return layer

    def affine(self, d_in, d_out, std=None, bias=True):
        """An ``Affine`` from ``d_in`` to ``d_out`` features (He-normal, or N(0, std**2))."""
        W = (std if std is not None else np.sqrt(2.0 / d_in)) * np.random.randn(d_in, d_out)
        W = W.astype(self._dtype)
        b = np.zeros(d_out, dtype=self._dtype)
        layer = self.L.Affine(W, b)
        self._n_weight += 1
        self._new("W", W, layer, "W")
        if bias:
            self._new("b", b, layer, "b")
        return layer

    def bn(self, c, spatial=True, momentum=0.9):
        """A batch norm over ``c`` channels (``SpatialBatchNormalization``; ``spatial=False``: the book's
        ``BatchNormalization`` over ``c`` features), running statistics starting at mean 0 and variance 1."""
        gamma, beta = np.ones(c, dtype=self._dtype), np.zeros(c, dtype=self._dtype)
        cls = self.L.SpatialBatchNormalization if spatial else self.L.BatchNormalization
        # running statistics start at mean 0, variance 1 (as torch and Keras; the book starts the variance at 0,
        # which makes an untrained network's inference blow up by 1/sqrt(eps) per batch norm)
        layer = cls(gamma, beta, momentum=momentum, running_mean=np.zeros(c, dtype=self._dtype),
                    running_var=np.ones(c, dtype=self._dtype))
        self._n_bn += 1
        self._new("gamma", gamma, layer, "gamma")
        self._new("beta", beta, layer, "beta")
        self._bn.append((self._n_bn, layer))
        return layer

    def conv_bn_relu(self, c_in, c_out, k, stride=1, groups=1):
        """conv (no bias, 'same') - batch norm - ReLU, the unit of the batch-norm networks."""
        return [self.conv(c_in, c_out, k, stride, groups=groups), self.bn(c_out), self.L.Relu()]

    # ---- the book's methods

    @property
    def layers(self) -> list:
        """Every layer of the network, in the order a forward pass reaches them (blocks flattened): what the
        Trainer's checkpoints walk for batch-norm statistics and dropout generators."""
        out = []

        def walk(item):
            if isinstance(item, Chain):
                for it in item.items:
                    walk(it)
            elif isinstance(item, Residual):
                walk(item.body)
                if item.shortcut is not None:
                    walk(item.shortcut)
                out.append(item.add)
                if item.post is not None:
                    out.append(item.post)
            elif isinstance(item, Branches):
                for b in item.branches:
                    walk(b)
                out.append(item.concat)
            else:
                out.append(item)

        walk(self.body)
        return out

    def _bind_params(self):
        for key, (layer, attr) in self._slots.items():
            setattr(layer, attr, self.params[key])

    def _buffers(self):
        out = {}
        for j, layer in self._bn:
            like = self.params["gamma" + str(j)]
            out["running_mean" + str(j)] = (layer, "running_mean", like)
            out["running_var" + str(j)] = (layer, "running_var", like)
        return out

    def predict(self, x, train_flg=False):
        """Scores before the loss layer; ``train_flg`` drives dropout and batch norm."""
        return self.body.forward(x, train_flg)

    def gradient(self, x, t):
        """Gradients of ``loss(x, t)`` by backpropagation, keyed like ``params``."""
        self.loss(x, t)
        self.body.backward(self.last_layer.backward(1))
        return {key: getattr(layer, "d" + attr) for key, (layer, attr) in self._slots.items()}


def same_size(size, stride):
    """Output extent of a 'same' window over ``size`` with ``stride`` (TensorFlow's rule: ceil(size / stride))."""
    return -(-size // stride)


def pool_size(size, k, stride, pad=0):
    """Output extent of a pooling window (the book's formula)."""
    return conv_output_size(size, k, stride, pad)
