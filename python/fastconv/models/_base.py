"""What every network of ``fastconv.models`` shares: the book's ``loss`` / ``accuracy`` / ``save_params`` /
``load_params``, running the layers in order (through the fast paths the layers offer), and the choice of the
layer module (``layers=``).
"""

from __future__ import annotations

import numpy as np

from .. import io as _io

__all__ = ["TRAIN_FLG_LAYERS", "Net", "forward_layer", "layers_module", "run_layers"]

# Layers whose forward takes ``train_flg`` in the book's code too (their output differs between training and
# inference); a layer class can also declare ``takes_train_flg = True`` (fastconv's Pooling: inference keeps
# no argmax).
TRAIN_FLG_LAYERS = ("Dropout", "BatchNormalization", "SpatialBatchNormalization")


def forward_layer(layer, x, train_flg):
    """``layer.forward(x, train_flg)`` for the layers that take the mode, else ``layer.forward(x)``."""
    if getattr(layer, "takes_train_flg", False) or type(layer).__name__ in TRAIN_FLG_LAYERS:
        return layer.forward(x, train_flg)
    return layer.forward(x)


def layers_module(layers):
    """The module that provides the layer classes: ``layers``, or :mod:`fastconv.layers` when it is None."""
    if layers is None:
        from .. import layers as fc_layers

        return fc_layers
    return layers


def run_layers(items, x, forward):
    """Runs ``x`` through ``items`` (layers, or (key, layer) pairs) in order, ``forward(key, layer, x)`` for each
    (key None for bare layers), except where a layer offers a one-pass forward of itself and the next layer
    (``fused_forward``, e.g. a fastconv Convolution followed by a fastconv Relu: the same numbers and layer state,
    one pass over memory fewer). Layers without the method (``layers=`` another module) run one by one."""
    items = [it if isinstance(it, tuple) else (None, it) for it in items]
    i = 0
    while i < len(items):
        key, layer = items[i]
        fuse = getattr(layer, "fused_forward", None) if i + 1 < len(items) else None
        fused = fuse(items[i + 1][1]) if fuse is not None else None
        if fused is not None:
            x = fused(x)
            i += 2
        else:
            x = forward(key, layer, x)
            i += 1
    return x


class Net:
    """Shared book methods: loss, accuracy, save_params, load_params, and running the layers in order."""

    params: dict
    last_layer: object

    def loss(self, x, t):
        y = self.predict(x, train_flg=True)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        acc = 0.0
        for i in range(int(np.ceil(x.shape[0] / batch_size))):
            tx = x[i * batch_size:(i + 1) * batch_size]
            tt = t[i * batch_size:(i + 1) * batch_size]
            y = np.argmax(self.predict(tx, train_flg=False), axis=1)
            acc += np.sum(y == tt)
        return acc / x.shape[0]

    def _layer_items(self) -> list:
        """(key, layer) for each layer in order: the keys of a dict of layers, the indices of a list."""
        return list(self.layers.items() if isinstance(self.layers, dict) else enumerate(self.layers))

    def _forward(self, x, forward):
        """Runs ``x`` through ``self.layers`` (a dict or a list) in order: :func:`run_layers`."""
        return run_layers(self._layer_items(), x, forward)

    def _backprop(self, dout):
        """Runs ``dout`` back through ``self.layers`` (a dict or a list) in reverse order. A first layer that
        offers a backward for that place (``first_layer_backward``, e.g. a fastconv Convolution's
        :meth:`fastconv.layers.Convolution.backward_params`) computes only its parameters' gradients: the
        gradient of the network's input is not a parameter's, and nothing reads it."""
        layers = [layer for _, layer in self._layer_items()]
        for i in range(len(layers) - 1, -1, -1):
            if i == 0:
                offer = getattr(layers[0], "first_layer_backward", None)
                first = offer() if offer is not None else None
                if first is not None:
                    first(dout)
                    return None
            dout = layers[i].backward(dout)
        return dout

    def _buffers(self) -> dict:
        """State saved beside ``params``: name -> (layer, attribute, an array of its shape and dtype)."""
        return {}

    def save_params(self, file_name="params.npz"):
        """Write ``params`` (and any batch-norm running statistics) to ``file_name`` with
        :func:`fastconv.io.save_params`: ``.npz``, no pickle, atomic (temporary file, fsync, rename)."""
        arrays = dict(self.params)
        for key, (layer, attr, _) in self._buffers().items():
            value = getattr(layer, attr)
            if value is not None:
                arrays[key] = value
        _io.save_params(arrays, file_name)

    def load_params(self, file_name="params.npz"):
        """Read parameters with :func:`fastconv.io.load_params` (``.npz``, or the book's ``.pkl`` through a
        restricted unpickler), check their names and shapes, cast them to this network's dtype and rebind
        them in the layers."""
        buffers = self._buffers()
        # names and shapes are checked by the reader, from the .npz headers before any array is inflated
        expected = {**{k: v.shape for k, v in self.params.items()},
                    **{k: like.shape for k, (_, _, like) in buffers.items()}}
        data = _io.load_params(file_name, expected=expected, optional=buffers)
        loaded = {}
        for key, current in self.params.items():
            value = data[key]
            if value.dtype.kind not in "fiu":
                raise _io.ParamMismatchError(f"{file_name}: {key} has dtype {value.dtype}, expected a real "
                                             "number type")
            # contiguous and writable: the optimizers update parameters in place
            loaded[key] = np.require(value, dtype=current.dtype, requirements=["C", "W"])
        self.params.update(loaded)
        self._bind_params()
        for key, (layer, attr, like) in buffers.items():
            if key in data:
                setattr(layer, attr, np.require(data[key], dtype=like.dtype, requirements=["C", "W"]))
