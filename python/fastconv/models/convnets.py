"""The book's ``SimpleConvNet`` (ch07) and ``DeepConvNet`` (ch08), same architecture, parameter names and
initialisation, with two additions: ``dtype`` (default float32) and ``layers``, the module that provides
the layer classes (default :mod:`fastconv.layers`; pass :mod:`fastconv.reference.layers` to get the
book's pure-NumPy network, e.g. for comparisons).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._checks import conv_output_size
from ._base import Net, forward_layer, layers_module

__all__ = ["SimpleConvNet", "DeepConvNet"]


class SimpleConvNet(Net):
    """conv - relu - pool - affine - relu - affine - softmax (book ch07)."""

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01, dtype=np.float32, layers=None):
        conv_param = conv_param or {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        L = layers_module(layers)
        fn, fs = conv_param["filter_num"], conv_param["filter_size"]
        pad, stride = conv_param["pad"], conv_param["stride"]
        in_size = input_dim[1]
        conv_out = conv_output_size(in_size, fs, stride, pad)
        pool_out = int(fn * (conv_out / 2) * (conv_out / 2))
        self.params = {
            "W1": (weight_init_std * np.random.randn(fn, input_dim[0], fs, fs)).astype(dtype),
            "b1": np.zeros(fn, dtype=dtype),
            "W2": (weight_init_std * np.random.randn(pool_out, hidden_size)).astype(dtype),
            "b2": np.zeros(hidden_size, dtype=dtype),
            "W3": (weight_init_std * np.random.randn(hidden_size, output_size)).astype(dtype),
            "b3": np.zeros(output_size, dtype=dtype),
        }
        self.layers = OrderedDict()
        self.layers["Conv1"] = L.Convolution(self.params["W1"], self.params["b1"], stride, pad)
        self.layers["Relu1"] = L.Relu()
        self.layers["Pool1"] = L.Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = L.Affine(self.params["W2"], self.params["b2"])
        self.layers["Relu2"] = L.Relu()
        self.layers["Affine2"] = L.Affine(self.params["W3"], self.params["b3"])
        self.last_layer = L.SoftmaxWithLoss()

    def _bind_params(self):
        for i, key in enumerate(["Conv1", "Affine1", "Affine2"]):
            self.layers[key].W = self.params["W" + str(i + 1)]
            self.layers[key].b = self.params["b" + str(i + 1)]

    def predict(self, x, train_flg=False):
        return self._forward(x, lambda key, layer, x: forward_layer(layer, x, train_flg))

    def gradient(self, x, t):
        self.loss(x, t)
        self._backprop(self.last_layer.backward(1))
        grads = {}
        for i, key in enumerate(["Conv1", "Affine1", "Affine2"]):
            grads["W" + str(i + 1)] = self.layers[key].dW
            grads["b" + str(i + 1)] = self.layers[key].db
        return grads


class DeepConvNet(Net):
    """Six 3x3 convolutions with ReLU, three max-pools, two affine layers with dropout (book ch08, He init)."""

    _PARAM_LAYERS = (0, 2, 5, 7, 10, 12, 15, 18)

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1=None, conv_param_2=None, conv_param_3=None,
                 conv_param_4=None, conv_param_5=None, conv_param_6=None,
                 hidden_size=50, output_size=10, dtype=np.float32, layers=None):
        L = layers_module(layers)
        conv_params = [
            conv_param_1 or {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
            conv_param_2 or {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
            conv_param_3 or {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
            conv_param_4 or {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
            conv_param_5 or {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
            conv_param_6 or {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
        ]
        # He initialisation: std = sqrt(2 / fan_in) with the book's fan-ins
        pre_node_nums = np.array([1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3, 64 * 3 * 3,
                                  64 * 4 * 4, hidden_size])
        scales = np.sqrt(2.0 / pre_node_nums)
        self.params = {}
        pre_channel = input_dim[0]
        for idx, cp in enumerate(conv_params):
            fn, fs = cp["filter_num"], cp["filter_size"]
            self.params["W" + str(idx + 1)] = (scales[idx] * np.random.randn(fn, pre_channel, fs, fs)).astype(dtype)
            self.params["b" + str(idx + 1)] = np.zeros(fn, dtype=dtype)
            pre_channel = fn
        self.params["W7"] = (scales[6] * np.random.randn(64 * 4 * 4, hidden_size)).astype(dtype)
        self.params["b7"] = np.zeros(hidden_size, dtype=dtype)
        self.params["W8"] = (scales[7] * np.random.randn(hidden_size, output_size)).astype(dtype)
        self.params["b8"] = np.zeros(output_size, dtype=dtype)

        self.layers = []
        for idx, cp in enumerate(conv_params):
            self.layers.append(L.Convolution(self.params["W" + str(idx + 1)], self.params["b" + str(idx + 1)],
                                             cp["stride"], cp["pad"]))
            self.layers.append(L.Relu())
            if idx % 2 == 1:
                self.layers.append(L.Pooling(pool_h=2, pool_w=2, stride=2))
        self.layers.append(L.Affine(self.params["W7"], self.params["b7"]))
        self.layers.append(L.Relu())
        self.layers.append(L.Dropout(0.5))
        self.layers.append(L.Affine(self.params["W8"], self.params["b8"]))
        self.layers.append(L.Dropout(0.5))
        self.last_layer = L.SoftmaxWithLoss()

    def _bind_params(self):
        for i, layer_idx in enumerate(self._PARAM_LAYERS):
            self.layers[layer_idx].W = self.params["W" + str(i + 1)]
            self.layers[layer_idx].b = self.params["b" + str(i + 1)]

    def predict(self, x, train_flg=False):
        return self._forward(x, lambda key, layer, x: forward_layer(layer, x, train_flg))

    def gradient(self, x, t):
        self.loss(x, t)
        self._backprop(self.last_layer.backward(1))
        grads = {}
        for i, layer_idx in enumerate(self._PARAM_LAYERS):
            grads["W" + str(i + 1)] = self.layers[layer_idx].dW
            grads["b" + str(i + 1)] = self.layers[layer_idx].db
        return grads
