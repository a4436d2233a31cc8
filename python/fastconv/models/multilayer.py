"""The book's fully connected networks (ch06): ``MultiLayerNet`` and ``MultiLayerNetExtend``.

Same arguments, layer names (``Affine1``, ``Activation_function1``, ``BatchNorm1``, ``Dropout1``, ...),
parameter names (``W1, b1, ...``, ``gamma1, beta1, ...``) and semantics as the book: weights are
``scale * randn`` with ``scale = sqrt(2 / n_prev)`` for ``'relu'``/``'he'``, ``sqrt(1 / n_prev)`` for
``'sigmoid'``/``'xavier'``, or the number given; weight decay adds ``0.5 * lambda * sum(W**2)`` over every
``W`` to the loss and ``lambda * W`` to each ``dW``. Added: ``dtype`` (default float32) and ``layers``.
Input (N, input_size), e.g. flattened MNIST (N, 784).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ._base import Net, layers_module

__all__ = ["MultiLayerNet", "MultiLayerNetExtend"]

ACTIVATIONS = ("relu", "sigmoid")


def _sizes(input_size, hidden_size_list, output_size):
    sizes = []
    named = [("input_size", input_size)]
    named += [(f"hidden_size_list[{i}]", h) for i, h in enumerate(hidden_size_list)]
    named += [("output_size", output_size)]
    for name, value in named:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
        sizes.append(int(value))
    return sizes


def _init_scale(weight_init_std, n_prev):
    key = str(weight_init_std).lower()
    if key in ("relu", "he"):
        return np.sqrt(2.0 / n_prev)
    if key in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / n_prev)
    if isinstance(weight_init_std, str):
        raise ValueError(f"weight_init_std: expected 'relu', 'he', 'sigmoid', 'xavier' or a number, "
                         f"got {weight_init_std!r}")
    if isinstance(weight_init_std, bool) or not isinstance(weight_init_std, (int, float, np.number)):
        raise TypeError(f"weight_init_std: expected a str or a number, got {type(weight_init_std).__name__}")
    return float(weight_init_std)


class MultiLayerNet(Net):
    """Fully connected network: (Affine - activation) x len(hidden_size_list) - Affine - SoftmaxWithLoss.

    Parameters
    ----------
    input_size : int
        Input features per sample (784 for MNIST).
    hidden_size_list : list of int
        Units of each hidden layer, e.g. ``[100, 100, 100]``.
    output_size : int
        Number of classes.
    activation : {'relu', 'sigmoid'}, optional
    weight_init_std : {'relu', 'he', 'sigmoid', 'xavier'} or float, optional
        He scale, Xavier scale, or a fixed standard deviation.
    weight_decay_lambda : float, optional
        L2 weight-decay strength.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu", weight_init_std="relu",
                 weight_decay_lambda=0, dtype=np.float32, layers=None):
        self._setup(input_size, hidden_size_list, output_size, activation, weight_init_std,
                    weight_decay_lambda, dtype, layers)
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers["Affine" + str(idx)] = self._affine(idx)
            self.layers["Activation_function" + str(idx)] = self._activation()
        self._add_output_layers()

    # --------------------------------------------------------------------------------------------------
    # construction shared with MultiLayerNetExtend

    def _setup(self, input_size, hidden_size_list, output_size, activation, weight_init_std,
               weight_decay_lambda, dtype, layers):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        hidden_size_list = list(hidden_size_list)
        sizes = _sizes(input_size, hidden_size_list, output_size)
        self.input_size = sizes[0]
        self.output_size = sizes[-1]
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = float(weight_decay_lambda)
        if not self.weight_decay_lambda >= 0:
            raise ValueError(f"weight_decay_lambda: expected a number >= 0, got {weight_decay_lambda!r}")
        self._L = layers_module(layers)
        self._activation = self._L.Relu if activation == "relu" else self._L.Sigmoid
        self._dtype = np.dtype(dtype)
        self.params = {}
        for idx in range(1, len(sizes)):
            scale = _init_scale(weight_init_std, sizes[idx - 1])
            W = scale * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params["W" + str(idx)] = W.astype(self._dtype)
            self.params["b" + str(idx)] = np.zeros(sizes[idx], dtype=self._dtype)
        self.layers = OrderedDict()

    def _affine(self, idx):
        return self._L.Affine(self.params["W" + str(idx)], self.params["b" + str(idx)])

    def _add_output_layers(self):
        idx = self.hidden_layer_num + 1
        self.layers["Affine" + str(idx)] = self._affine(idx)
        self.last_layer = self._L.SoftmaxWithLoss()

    def _bind_params(self):
        for idx in range(1, self.hidden_layer_num + 2):
            layer = self.layers["Affine" + str(idx)]
            layer.W, layer.b = self.params["W" + str(idx)], self.params["b" + str(idx)]

    # --------------------------------------------------------------------------------------------------
    # the book's methods

    def _weight_decay(self):
        decay = 0.0
        if self.weight_decay_lambda:
            for idx in range(1, self.hidden_layer_num + 2):
                W = self.params["W" + str(idx)]
                decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)
        return decay

    def predict(self, x, train_flg=False):
        """Scores (before softmax), shape (N, output_size)."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Cross-entropy of ``softmax(predict(x))`` against ``t`` plus the weight-decay term."""
        y = self.predict(x)
        return self.last_layer.forward(y, t) + self._weight_decay()

    def gradient(self, x, t):
        """Gradients of :meth:`loss` by backpropagation (``dW`` has ``+ lambda * W``), keyed as ``params``."""
        self.loss(x, t)
        self._backprop(self.last_layer.backward(1))
        return self._grads()

    def _grads(self):
        """The layers' gradients after a backward pass, keyed and ordered as ``params``: per hidden layer
        ``WK`` (with ``+ lambda * W``), ``bK``, and where the layer has batch norm ``gammaK``, ``betaK``."""
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            layer = self.layers["Affine" + str(idx)]
            grads["W" + str(idx)] = layer.dW + self.weight_decay_lambda * layer.W
            grads["b" + str(idx)] = layer.db
            bn = self.layers.get("BatchNorm" + str(idx))
            if bn is not None:
                grads["gamma" + str(idx)] = bn.dgamma
                grads["beta" + str(idx)] = bn.dbeta
        return grads


class MultiLayerNetExtend(MultiLayerNet):
    """``MultiLayerNet`` with optional dropout and batch normalization (book ch06).

    Hidden block ``idx``: Affine - [BatchNorm] - activation - [Dropout]. ``predict(x, train_flg)`` and
    ``loss(x, t, train_flg=False)`` pass ``train_flg`` to the dropout and batch-norm layers; ``gradient``
    runs the training-mode loss. Batch-norm running statistics are saved by :meth:`save_params` as
    ``running_meanK`` / ``running_varK`` beside the parameters.

    Parameters
    ----------
    input_size, hidden_size_list, output_size, activation, weight_init_std, weight_decay_lambda
        As for :class:`MultiLayerNet`.
    use_dropout : bool, optional
        Add a ``Dropout`` after each hidden activation.
    dropout_ration : float, optional
        Dropout ratio (the book's argument name).
    use_batchnorm : bool, optional
        Add a ``BatchNormalization`` (params ``gammaK``, ``betaK``) after each hidden affine layer.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu", weight_init_std="relu",
                 weight_decay_lambda=0, use_dropout=False, dropout_ration=0.5, use_batchnorm=False,
                 dtype=np.float32, layers=None):
        self._setup(input_size, hidden_size_list, output_size, activation, weight_init_std,
                    weight_decay_lambda, dtype, layers)
        if not 0.0 <= float(dropout_ration) < 1.0:
            raise ValueError(f"dropout_ration: expected a value in [0, 1), got {dropout_ration!r}")
        self.use_dropout = bool(use_dropout)
        self.dropout_ration = float(dropout_ration)
        self.use_batchnorm = bool(use_batchnorm)
        L = self._L
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers["Affine" + str(idx)] = self._affine(idx)
            if self.use_batchnorm:
                n = self.hidden_size_list[idx - 1]
                self.params["gamma" + str(idx)] = np.ones(n, dtype=self._dtype)
                self.params["beta" + str(idx)] = np.zeros(n, dtype=self._dtype)
                self.layers["BatchNorm" + str(idx)] = L.BatchNormalization(self.params["gamma" + str(idx)],
                                                                           self.params["beta" + str(idx)])
            self.layers["Activation_function" + str(idx)] = self._activation()
            if self.use_dropout:
                self.layers["Dropout" + str(idx)] = L.Dropout(self.dropout_ration)
        self._add_output_layers()

    def _bind_params(self):
        super()._bind_params()
        if self.use_batchnorm:
            for idx in range(1, self.hidden_layer_num + 1):
                layer = self.layers["BatchNorm" + str(idx)]
                layer.gamma, layer.beta = self.params["gamma" + str(idx)], self.params["beta" + str(idx)]

    def _buffers(self):
        out = {}
        if self.use_batchnorm:
            for idx in range(1, self.hidden_layer_num + 1):
                layer, like = self.layers["BatchNorm" + str(idx)], self.params["gamma" + str(idx)]
                out["running_mean" + str(idx)] = (layer, "running_mean", like)
                out["running_var" + str(idx)] = (layer, "running_var", like)
        return out

    def predict(self, x, train_flg=False):
        """Scores (before softmax); ``train_flg`` selects training mode for dropout and batch norm."""
        for key, layer in self.layers.items():
            if "Dropout" in key or "BatchNorm" in key:
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=False):
        """Cross-entropy plus weight decay; ``train_flg`` as for :meth:`predict` (book default False)."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self._weight_decay()

    def gradient(self, x, t):
        """Gradients of the training-mode :meth:`loss`, keyed as ``params`` (with ``gammaK``, ``betaK``)."""
        self.loss(x, t, train_flg=True)
        self._backprop(self.last_layer.backward(1))
        return self._grads()
