"""Keras 3 layers (names, arguments, defaults, weight layouts) as adapters over ``fastconv.ops``.

Every layer here translates Keras' arguments into fastconv's kernels and holds no arithmetic of its own beyond
what the translation needs (stated where it happens). What a layer computes is the kernel's:
``Conv2D`` -> ``ops.conv_forward`` / ``conv_backward`` (the ReLU fused into the convolution's write-back),
``MaxPooling2D`` -> ``ops.maxpool_*``, ``Dense`` -> ``ops.affine_*``, ``BatchNormalization`` ->
``ops.batchnorm_*`` per channel, ``Dropout`` -> ``ops.dropout_*``, ...

Layouts. Users see Keras' layouts: images are (N, H, W, C) (``data_format='channels_last'``, Keras' default)
and weights are Keras' shapes (a Conv2D kernel is (kh, kw, in, out)). fastconv's kernels work on (N, C, H, W)
and (out, in, kh, kw). A model converts its inputs once at its edge; inside, every 4-D channels-last tensor is
held as (N, C, H, W) (the tensor's ``_t`` flag says so), and a layer that needs Keras' logical layout
(``Flatten``, ``Reshape``, ``Dense`` on images, ``BatchNormalization``) converts it back. Weights are kept in
fastconv's layout and converted by ``get_weights`` / ``set_weights``. ``data_format='channels_first'`` is
accepted on every image layer.

Where a Keras argument needs a kernel fastconv does not have (e.g. ``ReLU(max_value=...)``, a softmax over
channels, a dilated transposed convolution), the layer raises ``NotImplementedError`` naming it instead of
computing it here.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops, time_layers
from . import activations as _activations
from . import backend
from . import initializers as _initializers

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "KerasTensor",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPooling2D",
    "MultiHeadAttention",
    "ReLU",
    "Reshape",
    "SeparableConv2D",
    "SimpleRNN",
    "Softmax",
    "TransformerEncoder",
    "UpSampling2D",
    "ZeroPadding2D",
]


# ======================================================================================================
# layouts: a 4-D channels-last tensor is held as (N, C, H, W) inside a model ("t" layout)


def _to_t(x):
    """Logical (N, H, W, C) -> internal (N, C, H, W)."""
    if x.shape[3] == 1 and x.flags.c_contiguous:  # one channel: the same bytes, no copy
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _from_t(x):
    """Internal (N, C, H, W) -> logical (N, H, W, C)."""
    if x.shape[1] == 1 and x.flags.c_contiguous:
        return x.reshape(x.shape[0], x.shape[2], x.shape[3], 1)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _convert(x, have: bool, want: bool):
    """``x`` held in layout ``have`` (True: t) as layout ``want``."""
    if have == want:
        return x
    return _to_t(x) if want else _from_t(x)


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _tuple2(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints (Keras' ``kernel_size``, ``strides``, ``pool_size``) as a pair."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        vals = tuple(value)
    except TypeError:
        raise ValueError(
            f"The `{name}` argument must be a tuple of 2 integers. Received: {name}={value}"
        ) from None
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in vals):
        raise ValueError(f"The `{name}` argument must be a tuple of 2 integers. Received: {name}={value}")
    return int(vals[0]), int(vals[1])


def _padding(value) -> str:
    p = str(value).lower() if isinstance(value, str) else value
    if p not in ("valid", "same"):
        raise ValueError(f'The `padding` argument must be one of "valid", "same". Received: {value}')
    return p


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) of one axis: output ceil(size / s), the odd pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _unsupported(what: str):
    raise NotImplementedError(f"{what} needs a kernel fastconv does not have yet")


def _reject(layer: str, **args) -> None:
    """NotImplementedError for Keras arguments given a value this front end cannot honour."""
    for name, value in args.items():
        if value is not None and value is not False:
            raise NotImplementedError(f"{layer}: `{name}={value!r}` is not supported by fastconv.keras")


# ======================================================================================================
# symbolic tensors, nodes, variables


def _act_forward(act, x, ctx, logits=False, relu_done=False, slope=_activations.LEAKY_SLOPE):
    """A layer's ``activation`` on its output ``x`` (``logits``: the model's loss applies the sigmoid / softmax,
    fused with itself; ``relu_done``: a convolution fused the ReLU into its write-back; ``slope``: the leaky ReLU's
    negative slope). Keeps what the backward pass needs in ``ctx``. Softmax runs on the last axis (Keras' layout)."""
    if act == "relu":
        out = x if relu_done else ops.relu_forward(x)
    elif act == "tanh":
        out = ops.tanh_forward(x)
    elif act == "leaky_relu":
        out = ops.leaky_relu_forward(x, slope)
        ctx["slope"] = slope
    elif act == "sigmoid" and not logits:
        out = ops.sigmoid_forward(x)
    elif act == "softmax" and not logits:
        out = ops.softmax(x.reshape(-1, x.shape[-1])).reshape(x.shape)
    else:
        out = x
    ctx["out"], ctx["act_logits"] = out, logits
    return out


def _act_backward(act, dout, ctx, layer_name):
    """The gradient through :func:`_act_forward`'s activation."""
    if act == "relu":
        return ops.relu_backward(dout, ctx["out"])
    if act == "tanh":
        return ops.tanh_backward(dout, ctx["out"])
    if act == "leaky_relu":
        return ops.leaky_relu_backward(dout, ctx["out"], ctx["slope"])
    if act == "sigmoid" and not ctx["act_logits"]:
        return ops.sigmoid_backward(dout, ctx["out"])
    if act == "softmax" and not ctx["act_logits"]:
        _unsupported(
            f"training a softmax ({layer_name}) anywhere but as the output of a model with a cross-entropy loss "
            "(a softmax backward pass)"
        )
    return dout


class KerasTensor:
    """A symbolic tensor: what ``Input`` returns and what layers return when called on one.

    ``shape`` is Keras' shape, batch axis ``None``; ``dtype`` a string.
    """

    def __init__(self, shape, dtype, t=False, history=None, name=None):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = dtype
        self._t = bool(t)
        self._keras_history = history  # (layer, node_index, tensor_index)
        self._node = None  # the Node that produced it
        self.name = name or backend.unique_name("keras_tensor")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse=False, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A KerasTensor is symbolic: it has no value. Pass it to layers or to Model(inputs, "
            "outputs); call the model on arrays to compute."
        )


class Node:
    """One call of a layer on symbolic tensors: its inputs, outputs and the layouts it wants."""

    def __init__(self, layer, inputs, wants):
        self.layer = layer
        self.inputs = list(inputs)
        self.wants = list(wants)
        self.outputs = []


class Variable:
    """A layer weight: stored in fastconv's layout, seen in Keras' (``numpy()``, ``assign``, ``shape``)."""

    def __init__(self, layer, name, data, trainable, keras_shape, to_keras=None, from_keras=None):
        self._layer = layer
        self.name = name
        self._data = np.ascontiguousarray(data)
        self.trainable = bool(trainable)
        self.shape = tuple(int(s) for s in keras_shape)
        self._to_keras = to_keras or (lambda a: a)
        self._from_keras = from_keras or (lambda a: a)
        self._grad = None

    @property
    def path(self) -> str:
        return f"{self._layer.name}/{self.name}"

    @property
    def dtype(self) -> str:
        return self._data.dtype.name

    def numpy(self) -> np.ndarray:
        """A copy in Keras' layout."""
        return np.array(self._to_keras(self._data), copy=True)

    def assign(self, value) -> None:
        """Write ``value`` (Keras' layout and shape) into the weight, in place (optimizer state stays)."""
        a = np.asarray(value)
        if a.shape != self.shape:
            raise ValueError(
                f"Layer {self._layer.name} weight shape {self.shape} is not compatible with provided "
                f"weight shape {a.shape}."
            )
        np.copyto(self._data, self._from_keras(a), casting="unsafe")

    def _accumulate(self, g) -> None:
        # a layer called at several nodes gets the sum of their gradients
        self._grad = g if self._grad is None else self._grad + g

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


# ======================================================================================================
# base layer


def _assign_weights(owner: str, params: list, weights) -> None:
    """``set_weights`` of a layer or model named ``owner``: every shape is checked (Keras' messages) before
    any variable is written, so a misfit list changes nothing."""
    weights = list(weights)
    if len(params) != len(weights):
        raise ValueError(
            f'You called `set_weights(weights)` on layer "{owner}" with a weight list of length '
            f"{len(weights)}, but the layer was expecting {len(params)} weights."
        )
    for v, w in zip(params, weights):
        if np.shape(w) != v.shape:
            raise ValueError(
                f"Layer {v._layer.name} weight shape {v.shape} is not compatible with provided weight "
                f"shape {np.shape(w)}."
            )
    for v, w in zip(params, weights):
        v.assign(w)


class Layer:
    """Base of every layer: naming, weights, symbolic and eager calls, config.

    Subclasses implement ``build(input_shape)``, ``compute_output_shape(input_shape)`` (Keras' logical
    shapes), ``_forward(xs, ctx, training, logits)`` and ``_backward(dout, ctx, need)`` on fastconv's layouts,
    and say which layout they want each input in (``_want_t``) and give their output in (``_out_t``).
    """

    _n_inputs = 1  # None: a merge layer taking a list
    _is_model = False

    def __init_subclass__(cls, **kwargs):
        # a layer built by hand (``layer.build(shape)``) is built, as in Keras
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__ and not cls._is_model:
            original = cls.__dict__["build"]

            def build(self, input_shape, _original=original):
                _original(self, input_shape)
                self.built = True

            build.__doc__ = original.__doc__
            cls.build = build

    def __init__(
        self,
        *,
        name=None,
        trainable=True,
        dtype=None,
        input_shape=None,
        batch_input_shape=None,
        batch_size=None,
        input_dim=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name}")
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.dtype = np.dtype(backend.floatx() if dtype is None else dtype).name
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"{type(self).__name__}: dtype {self.dtype!r} is not supported; fastconv's kernels run "
                "in float32 and float64"
            )
        self.built = False
        self._weights: list[Variable] = []
        self._inbound_nodes: list[Node] = []
        self._ndim = None
        self._min_ndim = None
        self._axes: dict = {}
        self._build_shapes = None
        self._batch_input_shape = None
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size, *tuple(input_shape))
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, int(input_dim))

    # ---- weights

    def _add_weight(self, name, keras_shape, initializer, trainable=True, to_keras=None, from_keras=None):
        value = _initializers.get(initializer)(tuple(keras_shape), dtype=self.dtype)
        value = np.asarray(value, dtype=self.dtype)
        data = value if from_keras is None else from_keras(value)
        v = Variable(
            self,
            name,
            np.array(data, dtype=self.dtype, order="C"),
            trainable,
            keras_shape,
            to_keras,
            from_keras,
        )
        self._weights.append(v)
        return v

    @property
    def weights(self) -> list:
        return list(self._weights)

    @property
    def trainable_weights(self) -> list:
        return [v for v in self._weights if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        return [v for v in self._weights if not (v.trainable and self.trainable)]

    @property
    def variables(self) -> list:
        return self.weights

    def get_weights(self) -> list:
        """The weights as NumPy arrays in Keras' layouts and order (e.g. [kernel, bias])."""
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights) -> None:
        """Set the weights from arrays in Keras' layouts and order, as ``get_weights`` returns them."""
        _assign_weights(self.name, self.weights, weights)

    def count_params(self) -> int:
        """Number of weight values (trainable and not)."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(math.prod(v.shape) for v in self.weights))

    # ---- input checks (Keras' InputSpec messages)

    def _check_input(self, i, shape) -> None:
        nd = len(shape)
        where = f'Input {i} of layer "{self.name}" is incompatible with the layer: '
        if self._ndim is not None and nd != self._ndim:
            raise ValueError(
                f"{where}expected ndim={self._ndim}, found ndim={nd}. Full shape received: "
                f"{_fmt_shape(shape)}"
            )
        if self._min_ndim is not None and nd < self._min_ndim:
            raise ValueError(
                f"{where}expected min_ndim={self._min_ndim}, found ndim={nd}. Full shape received: "
                f"{_fmt_shape(shape)}"
            )
        for axis, value in self._axes.items():
            if -nd <= axis < nd and shape[axis] not in (value, None):
                raise ValueError(
                    f"{where}expected axis {axis} of input shape to have value {value}, but received "
                    f"input with shape {_fmt_shape(shape)}"
                )

    def _spec_shapes(self, shapes) -> None:
        """Check shapes against the layer's spec (built layers) and build it on the first call."""
        if not self.built:
            for i, s in enumerate(shapes):
                self._check_input(i, s)
            self.build(shapes[0] if self._n_inputs == 1 else list(shapes))
            self._build_shapes = [tuple(s) for s in shapes]
            self.built = True
        for i, s in enumerate(shapes):
            self._check_input(i, s)

    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (Keras' shape, batch axis None)."""
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # ---- layouts

    def _want_t(self, i: int, ndim: int, have: bool) -> bool:
        """The layout this layer wants input ``i`` in; by default whatever it comes in."""
        return have

    def _out_t(self, wants, out_shape) -> bool:
        return bool(wants[0]) and len(out_shape) == 4

    # ---- calls

    def __call__(self, inputs, training=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.__call__ got unexpected keyword arguments {sorted(kwargs)}"
            )
        single = not isinstance(inputs, (list, tuple))
        flat = [inputs] if single else list(inputs)
        if self._n_inputs is None and single:
            raise ValueError(
                f'Layer "{self.name}" expects a list of inputs (a merge layer). Received: {inputs}'
            )
        if self._n_inputs == 1 and len(flat) != 1:
            raise ValueError(
                f'Layer "{self.name}" expects 1 input(s), but it received {len(flat)} input tensors.'
            )
        symbolic = [isinstance(t, KerasTensor) for t in flat]
        if all(symbolic):
            return self._call_symbolic(flat)
        if any(symbolic):
            raise ValueError(f'Layer "{self.name}": inputs mix symbolic KerasTensors and arrays')
        return self._call_eager(flat, bool(training))

    def _call_symbolic(self, flat):
        shapes = [t.shape for t in flat]
        self._spec_shapes(shapes)
        out_shape = tuple(self.compute_output_shape(shapes[0] if self._n_inputs == 1 else shapes))
        wants = [self._want_t(i, t.ndim, t._t) for i, t in enumerate(flat)]
        node = Node(self, flat, wants)
        out = KerasTensor(
            out_shape, self.dtype, self._out_t(wants, out_shape), history=(self, len(self._inbound_nodes), 0)
        )
        node.outputs = [out]
        out._node = node
        self._inbound_nodes.append(node)
        return out

    def _call_eager(self, arrays, training):
        xs = []
        for i, a in enumerate(arrays):
            a = ops.as_array(a, f"inputs[{i}]")
            if a.dtype.kind != "f":
                a = a.astype(self.dtype)
            xs.append(a)
        shapes = [(None, *a.shape[1:]) for a in xs]
        self._spec_shapes(shapes)
        out_shape = tuple(self.compute_output_shape(shapes[0] if self._n_inputs == 1 else shapes))
        wants = [self._want_t(i, a.ndim, False) for i, a in enumerate(xs)]
        xs = [_convert(a, False, w) for a, w in zip(xs, wants)]
        out = self._forward(xs, {"_wants": wants}, training, False)
        return _convert(out, self._out_t(wants, out_shape), False)

    def _forward(self, xs, ctx, training, logits):
        return self._fwd1(xs[0], ctx, training, logits)

    def _backward(self, dout, ctx, need):
        return [self._bwd1(dout, ctx, need[0])]

    def _fwd1(self, x, ctx, training, logits):
        return x

    def _bwd1(self, dout, ctx, need_dx):
        return dout

    # ---- graph accessors

    def _only_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined {what}."
            )
        if len(self._inbound_nodes) > 1:
            raise AttributeError(
                f"The layer {self.name} has been called at {len(self._inbound_nodes)} places: "
                f"its {what} is ambiguous"
            )
        return self._inbound_nodes[0]

    @property
    def input(self):
        node = self._only_node("input")
        return node.inputs[0] if len(node.inputs) == 1 else list(node.inputs)

    @property
    def output(self):
        return self._only_node("output").outputs[0]

    # ---- config

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# ======================================================================================================
# input


class InputLayer(Layer):
    """The layer behind ``Input``: holds the model input's shape and dtype."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        shape = kwargs.pop("input_shape", shape)  # Keras 2 spellings
        batch_shape = kwargs.pop("batch_input_shape", batch_shape)
        _reject(
            "Input",
            sparse=kwargs.pop("sparse", None),
            tensor=kwargs.pop("tensor", None),
            ragged=kwargs.pop("ragged", None),
        )
        super().__init__(name=name or backend.unique_name("input_layer"), dtype=dtype, **kwargs)
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if shape is None and batch_shape is None:
            raise ValueError("You must pass a `shape` argument.")
        if shape is not None:
            if isinstance(shape, (int, np.integer)):
                shape = (int(shape),)
            batch_shape = (batch_size, *tuple(shape))
        batch_shape = tuple(batch_shape)
        for d in batch_shape[1:]:
            if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1):
                raise ValueError(
                    f"Input: every dimension of `shape` must be a positive int or None, got "
                    f"shape={batch_shape[1:]}"
                )
        self.batch_shape = batch_shape
        self.built = True
        t = len(batch_shape) == 4 and backend.image_data_format() == "channels_last"
        self.output_tensor = KerasTensor(batch_shape, self.dtype, t, history=(self, 0, 0), name=self.name)
        node = Node(self, [], [])
        node.outputs = [self.output_tensor]
        self.output_tensor._node = node
        self._inbound_nodes.append(node)

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}


def Input(
    shape=None,
    batch_size=None,
    dtype=None,
    sparse=None,
    batch_shape=None,
    name=None,
    tensor=None,
    optional=False,
):
    """A symbolic model input of ``shape`` (one sample's shape; images (H, W, C) channels-last).

    Returns
    -------
    KerasTensor
    """
    _reject("Input", sparse=sparse, tensor=tensor, optional=optional)
    return InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name
    ).output_tensor


# ======================================================================================================
# image layers: shared data_format handling


class _ImageLayer(Layer):
    """A layer on 4-D images: wants them as (N, C, H, W) in fastconv's layout."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend.standardize_data_format(data_format)
        self._cl = self.data_format == "channels_last"
        self._ndim = 4

    def _want_t(self, i, ndim, have):
        return self._cl  # internal (N, C, H, W) of the layer's view of the tensor

    def _out_t(self, wants, out_shape):
        return self._cl and len(out_shape) == 4

    def _hwc(self, shape):
        """(H, W, C) of a logical image shape."""
        return (shape[1], shape[2], shape[3]) if self._cl else (shape[2], shape[3], shape[1])

    def _image_shape(self, n, h, w, c):
        return (n, h, w, c) if self._cl else (n, c, h, w)

    def _channel_axis(self):
        return -1 if self._cl else 1

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def _pad_nchw(x, pads, value=0.0):
    """Copy (N, C, H, W) ``x`` into a buffer with (top, bottom, left, right) rows/columns of ``value``."""
    t, b, lft, r = pads
    n, c, h, w = x.shape
    out = np.full((n, c, h + t + b, w + lft + r), value, dtype=x.dtype)
    out[:, :, t : t + h, lft : lft + w] = x
    return out


def _crop_nchw(x, pads):
    t, b, lft, r = pads
    h, w = x.shape[2], x.shape[3]
    return np.ascontiguousarray(x[:, :, t : h - b, lft : w - r])


# ======================================================================================================
# convolution


def _conv_apply(x, W, b, stride, pads, groups, rate, relu, ctx):
    """Keras' convolution of (N, C, H, W) ``x`` on fastconv's kernel: ``stride`` (sh, sw), ``pads`` (top, bottom,
    left, right), ``groups`` (depthwise with groups == C), dilation ``rate``, the ReLU fused when ``relu``;
    saves what the backward needs in ctx."""
    ctx["x"], ctx["W"], ctx["pads"] = x, W, pads
    return ops.conv_forward(x, W, b, stride, pads, dilation=rate, groups=groups, relu=relu)


def _conv_grad(dout, ctx, stride, groups, rate, need_dx):
    """(dx or None, dW, db) of :func:`_conv_apply`."""
    return ops.conv_backward(ctx["x"], ctx["W"], dout, stride, ctx["pads"], dilation=rate, groups=groups,
                             need_dx=need_dx)


class Conv2D(_ImageLayer):
    """2-D convolution: ``Conv2D(filters, kernel_size, strides=(1, 1), padding='valid', ...)`` as Keras 3.

    Runs ``ops.conv_forward`` (a ReLU activation fused into it) and ``ops.conv_backward``; the kernel is
    stored (filters, in, kh, kw) and seen as Keras' (kh, kw, in, filters). ``padding='same'`` pads as Keras
    (output ceil(size / stride), an odd pixel at the bottom / right); strides, dilation and groups go to the
    kernel as they are (depthwise convolutions have their own). Not supported: regularizers and constraints.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(
                "Invalid value for argument `filters`. Expected a strictly positive value. "
                f"Received filters={filters}."
            )
        self.filters = int(filters)
        self._init_conv(
            kernel_size, strides, padding, dilation_rate, groups, activation, use_bias, bias_initializer
        )
        if self.filters % self.groups:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={self.groups}, filters={self.filters}."
            )
        self.kernel_initializer = _initializers.get(kernel_initializer)
        _reject(
            type(self).__name__,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            lora_rank=lora_rank,
        )

    def _init_conv(
        self, kernel_size, strides, padding, dilation_rate, groups, activation, use_bias, bias_initializer
    ):
        self.kernel_size = _tuple2(kernel_size, "kernel_size")
        if min(self.kernel_size) <= 0:
            raise ValueError(
                f"The argument `kernel_size` cannot contain 0. Received kernel_size={self.kernel_size}."
            )
        self.strides = _tuple2(strides, "strides")
        if min(self.strides) <= 0:
            raise ValueError(f"The argument `strides` cannot contains 0. Received strides={self.strides}")
        self.padding = _padding(padding)
        self.dilation_rate = _tuple2(dilation_rate, "dilation_rate")
        if min(self.dilation_rate) <= 0:
            raise ValueError(
                f"The argument `dilation_rate` cannot contain 0. Received dilation_rate={self.dilation_rate}"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        self.groups = int(groups)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = _initializers.get(bias_initializer)
        if self.activation == "softmax":
            _unsupported(f"{type(self).__name__}: activation='softmax' (a softmax over channels)")

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        if c % self.groups:
            raise ValueError(
                f"The number of input channels must be evenly divisible by the number of groups. "
                f"Received groups={self.groups}, but the input has {c} channels (full input shape "
                f"is {_fmt_shape(input_shape)})."
            )
        kh, kw = self.kernel_size
        # Keras (kh, kw, in, out) <-> fastconv (out, in, kh, kw)
        self.kernel = self._add_weight(
            "kernel",
            (kh, kw, c // self.groups, self.filters),
            self.kernel_initializer,
            to_keras=lambda a: a.transpose(2, 3, 1, 0),
            from_keras=lambda a: np.ascontiguousarray(a.transpose(3, 2, 0, 1)),
        )
        self._build_bias(self.filters)
        self._axes = {self._channel_axis(): c}

    def _input_channels(self, input_shape):
        c = self._hwc(input_shape)[2]
        if c is None:
            raise ValueError(
                f"The channel dimension of the inputs should be defined. Received input shape "
                f"{_fmt_shape(input_shape)}"
            )
        return c

    def _build_bias(self, n):
        if self.use_bias:
            self.bias = self._add_weight("bias", (n,), self.bias_initializer)
        else:
            self.bias = None
            self._zero_bias = np.zeros(n, dtype=self.dtype)

    def _bias(self):
        return self.bias._data if self.use_bias else self._zero_bias

    def _geometry(self, h, w):
        """(pads (t, b, l, r), output h, w) for the dilated kernel's extent."""
        kh, kw = ((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
        sh, sw = self.strides
        pads = (0, 0, 0, 0) if self.padding == "valid" else (*_same_pads(h, kh, sh), *_same_pads(w, kw, sw))
        return pads, (h + pads[0] + pads[1] - kh) // sh + 1, (w + pads[2] + pads[3] - kw) // sw + 1

    def compute_output_shape(self, input_shape):
        h, w, _ = self._hwc(input_shape)
        oh = ow = None
        if h is not None and w is not None:
            _, oh, ow = self._geometry(h, w)
            if oh <= 0 or ow <= 0:
                raise ValueError(
                    f"Computed output size would be negative. Received `inputs shape="
                    f"{_fmt_shape(input_shape)}`, `kernel shape={self.kernel.shape}`, "
                    f"`dilation_rate={list(self.dilation_rate)}`."
                )
        return self._image_shape(input_shape[0], oh, ow, self._out_channels())

    def _out_channels(self):
        return self.filters

    def _fwd1(self, x, ctx, training, logits):
        pads, _, _ = self._geometry(x.shape[2], x.shape[3])
        out = _conv_apply(
            x,
            self.kernel._data,
            self._bias(),
            self.strides,
            pads,
            self.groups,
            self.dilation_rate,
            self.activation == "relu",
            ctx,
        )
        return _act_forward(self.activation, out, ctx, relu_done=True)

    def _bwd1(self, dout, ctx, need_dx):
        dout = _act_backward(self.activation, dout, ctx, self.name)
        dx, dW, db = _conv_grad(dout, ctx, self.strides, self.groups, self.dilation_rate, need_dx)
        if self.trainable:
            self.kernel._accumulate(dW)
            if self.use_bias:
                self.bias._accumulate(db)
        return dx

    def _conv_config(self):
        return {
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }

    def get_config(self):
        return {
            **_ImageLayer.get_config(self),
            "filters": self.filters,
            "groups": self.groups,
            **self._conv_config(),
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
        }


class DepthwiseConv2D(Conv2D):
    """``DepthwiseConv2D(kernel_size, strides=(1, 1), padding='valid', depth_multiplier=1, ...)`` as Keras 3:
    each input channel convolved with its own ``depth_multiplier`` filters (output channel c*m + j).

    Runs as a Conv2D with one group per input channel (one fastconv convolution per channel: a loop, as
    fastconv has no depthwise kernel). The kernel is Keras' (kh, kw, channels, depth_multiplier).
    """

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        _ImageLayer.__init__(self, data_format=data_format, **kwargs)
        if (
            isinstance(depth_multiplier, bool)
            or not isinstance(depth_multiplier, (int, np.integer))
            or depth_multiplier <= 0
        ):
            raise ValueError(
                "Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                f"Received depth_multiplier={depth_multiplier}."
            )
        self.depth_multiplier = int(depth_multiplier)
        self._init_conv(
            kernel_size, strides, padding, dilation_rate, 1, activation, use_bias, bias_initializer
        )
        self.depthwise_initializer = _initializers.get(depthwise_initializer)
        _reject(
            type(self).__name__,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
        )

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        m = self.depth_multiplier
        kh, kw = self.kernel_size
        self.groups = c
        self.filters = c * m
        # Keras (kh, kw, C, m) <-> fastconv grouped filters (C*m, 1, kh, kw), filter c*m + j
        self.kernel = self._add_weight(
            "kernel",
            (kh, kw, c, m),
            self.depthwise_initializer,
            to_keras=lambda a: a.reshape(c, m, kh, kw).transpose(2, 3, 0, 1),
            from_keras=lambda a: np.ascontiguousarray(a.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)),
        )
        self._build_bias(c * m)
        self._axes = {self._channel_axis(): c}

    def _out_channels(self):
        return self.filters

    def compute_output_shape(self, input_shape):
        self.filters = self._hwc(input_shape)[2] * self.depth_multiplier
        return super().compute_output_shape(input_shape)

    def get_config(self):
        return {
            **_ImageLayer.get_config(self),
            "depth_multiplier": self.depth_multiplier,
            **self._conv_config(),
            "depthwise_initializer": _initializers.serialize(self.depthwise_initializer),
        }


class SeparableConv2D(Conv2D):
    """``SeparableConv2D(filters, kernel_size, ..., depth_multiplier=1)`` as Keras 3: a depthwise convolution
    (no bias) then a 1x1 convolution to ``filters`` channels with the bias and the activation.

    Weights (Keras' order, layouts): depthwise_kernel (kh, kw, C, m), pointwise_kernel (1, 1, C*m, filters),
    bias. The depthwise part runs fastconv's depthwise kernel (see ``DepthwiseConv2D``).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        _ImageLayer.__init__(self, data_format=data_format, **kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(
                "Invalid value for argument `filters`. Expected a strictly positive value. "
                f"Received filters={filters}."
            )
        if (
            isinstance(depth_multiplier, bool)
            or not isinstance(depth_multiplier, (int, np.integer))
            or depth_multiplier <= 0
        ):
            raise ValueError(
                "Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                f"Received depth_multiplier={depth_multiplier}."
            )
        self.filters, self.depth_multiplier = int(filters), int(depth_multiplier)
        self._init_conv(
            kernel_size, strides, padding, dilation_rate, 1, activation, use_bias, bias_initializer
        )
        self.depthwise_initializer = _initializers.get(depthwise_initializer)
        self.pointwise_initializer = _initializers.get(pointwise_initializer)
        _reject(
            type(self).__name__,
            depthwise_regularizer=depthwise_regularizer,
            pointwise_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
        )

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        m = self.depth_multiplier
        kh, kw = self.kernel_size
        self.groups = c
        self.depthwise_kernel = self._add_weight(
            "depthwise_kernel",
            (kh, kw, c, m),
            self.depthwise_initializer,
            to_keras=lambda a: a.reshape(c, m, kh, kw).transpose(2, 3, 0, 1),
            from_keras=lambda a: np.ascontiguousarray(a.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)),
        )
        self.kernel = self.pointwise_kernel = self._add_weight(
            "pointwise_kernel",
            (1, 1, c * m, self.filters),
            self.pointwise_initializer,
            to_keras=lambda a: a.transpose(2, 3, 1, 0),
            from_keras=lambda a: np.ascontiguousarray(a.transpose(3, 2, 0, 1)),
        )
        self._build_bias(self.filters)
        self._axes = {self._channel_axis(): c}

    def _fwd1(self, x, ctx, training, logits):
        pads, _, _ = self._geometry(x.shape[2], x.shape[3])
        ctx["dw"], ctx["pw"] = {}, {}
        mid = _conv_apply(
            x,
            self.depthwise_kernel._data,
            None,
            self.strides,
            pads,
            self.groups,
            self.dilation_rate,
            False,
            ctx["dw"],
        )
        out = _conv_apply(
            mid,
            self.pointwise_kernel._data,
            self._bias(),
            1,
            (0, 0, 0, 0),
            1,
            (1, 1),
            self.activation == "relu",
            ctx["pw"],
        )
        return _act_forward(self.activation, out, ctx, relu_done=True)

    def _bwd1(self, dout, ctx, need_dx):
        dout = _act_backward(self.activation, dout, ctx, self.name)
        dmid, dpw, db = _conv_grad(dout, ctx["pw"], 1, 1, (1, 1), True)
        dx, ddw, _ = _conv_grad(dmid, ctx["dw"], self.strides, self.groups, self.dilation_rate, need_dx)
        if self.trainable:
            self.depthwise_kernel._accumulate(ddw)
            self.pointwise_kernel._accumulate(dpw)
            if self.use_bias:
                self.bias._accumulate(db)
        return dx

    def get_config(self):
        return {
            **_ImageLayer.get_config(self),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            **self._conv_config(),
            "depthwise_initializer": _initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": _initializers.serialize(self.pointwise_initializer),
        }


# ======================================================================================================
# pooling


class Conv2DTranspose(Conv2D):
    """``Conv2DTranspose(filters, kernel_size, strides=(1, 1), padding='valid', output_padding=None, ...)`` as
    Keras 3: the transposed convolution (the input gradient of the convolution with these strides and padding),
    on ``ops.deconv_forward`` / ``deconv_backward``. Output size per axis: ``'same'`` in * stride, ``'valid'``
    in * stride + max(kernel - stride, 0); with ``output_padding`` Keras' (in - 1) * stride + kernel - 2 * pad +
    output_padding, pad = kernel // 2 for ``'same'``. The kernel is Keras' (kh, kw, filters, in), held as fastconv's
    (in, filters, kh, kw). Not supported: ``dilation_rate`` other than 1, regularizers and constraints.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        if self.dilation_rate != (1, 1):
            _unsupported(f"Conv2DTranspose(dilation_rate={self.dilation_rate}) (a dilated transposed convolution)")
        if output_padding is None:
            self.output_padding = None
        else:
            op = (output_padding, output_padding) if isinstance(output_padding, (int, np.integer)) else output_padding
            self.output_padding = tuple(int(v) for v in op)
            if len(self.output_padding) != 2 or any(not 0 <= o < s for o, s in zip(self.output_padding,
                                                                                   self.strides)):
                raise ValueError(
                    f"Strides {self.strides} must be greater than output padding {output_padding}.")

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        kh, kw = self.kernel_size
        # Keras (kh, kw, filters, in) <-> fastconv (in, filters, kh, kw)
        self.kernel = self._add_weight(
            "kernel",
            (kh, kw, self.filters, c),
            self.kernel_initializer,
            to_keras=lambda a: a.transpose(2, 3, 1, 0),
            from_keras=lambda a: np.ascontiguousarray(a.transpose(3, 2, 0, 1)),
        )
        self._build_bias(self.filters)
        self._axes = {self._channel_axis(): c}

    def _deconv_args(self):
        """(pad, output_padding) for ops.deconv_*. With ``output_padding`` given, Keras (TensorFlow's alignment,
        which its torch backend reproduces) crops total = 2 * (kernel // 2) - output_padding rows for ``'same'``
        (-output_padding for ``'valid'``) from the full transposed output, the smaller half at the top / left;
        a negative total is rows added at the bottom / right."""
        if self.output_padding is None:
            return self.padding, 0
        pads, extra = [], []
        for k, op in zip(self.kernel_size, self.output_padding):
            total = (2 * (k // 2) if self.padding == "same" else 0) - op
            pads += [max(total, 0) // 2, max(total, 0) - max(total, 0) // 2]
            extra.append(max(-total, 0))
        return (pads[0], pads[1], pads[2], pads[3]), tuple(extra)

    def _geometry(self, h, w):
        out = []
        for size, k, s, i in zip((h, w), self.kernel_size, self.strides, range(2)):
            if self.output_padding is None:
                out.append(size * s + (max(k - s, 0) if self.padding == "valid" else 0))
            else:
                pad = k // 2 if self.padding == "same" else 0
                out.append((size - 1) * s + k - 2 * pad + self.output_padding[i])
        return None, out[0], out[1]

    def _fwd1(self, x, ctx, training, logits):
        pad, op = self._deconv_args()
        ctx["x"] = x
        out = ops.deconv_forward(x, self.kernel._data, self.bias._data if self.use_bias else None, self.strides,
                                 pad, op)
        return _act_forward(self.activation, out, ctx)

    def _bwd1(self, dout, ctx, need_dx):
        dout = _act_backward(self.activation, dout, ctx, self.name)
        pad, op = self._deconv_args()
        dx, dW, db = ops.deconv_backward(ctx["x"], self.kernel._data, dout, self.strides, pad, op, need_dx=need_dx)
        if self.trainable:
            self.kernel._accumulate(dW)
            if self.use_bias:
                self.bias._accumulate(db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        del cfg["groups"]
        return {**cfg, "output_padding": None if self.output_padding is None else list(self.output_padding)}


class _Pooling2D(_ImageLayer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.pool_size = _tuple2(pool_size, "pool_size")
        if min(self.pool_size) <= 0:
            raise ValueError(
                f"The argument `pool_size` cannot contain 0. Received pool_size={self.pool_size}."
            )
        self.strides = self.pool_size if strides is None else _tuple2(strides, "strides")
        if min(self.strides) <= 0:
            raise ValueError(f"The argument `strides` cannot contains 0. Received strides={self.strides}")
        self.padding = _padding(padding)
        if self.strides[0] != self.strides[1]:
            _unsupported(f"{type(self).__name__}: strides={self.strides} (unequal strides)")

    def _geometry(self, h, w):
        ph, pw = self.pool_size
        s = self.strides[0]
        pads = (0, 0, 0, 0) if self.padding == "valid" else (*_same_pads(h, ph, s), *_same_pads(w, pw, s))
        oh = (h + pads[0] + pads[1] - ph) // s + 1
        ow = (w + pads[2] + pads[3] - pw) // s + 1
        return pads, oh, ow

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        oh = ow = None
        if h is not None and w is not None:
            _, oh, ow = self._geometry(h, w)
            if oh <= 0 or ow <= 0:
                raise ValueError(
                    f"Computed output size would be negative. Received: `inputs.shape="
                    f"{_fmt_shape(input_shape)}` and `pool_size={self.pool_size}`."
                )
        return self._image_shape(input_shape[0], oh, ow, c)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling2D):
    """Max pooling (``ops.maxpool_*``); ``padding='same'`` pads with -inf, which never wins, as Keras."""

    def _fwd1(self, x, ctx, training, logits):
        pads, _, _ = self._geometry(x.shape[2], x.shape[3])
        if any(pads):
            x = _pad_nchw(x, pads, -np.inf)
        out, ctx["argmax"] = ops.maxpool_forward(x, self.pool_size[0], self.pool_size[1], self.strides[0], 0)
        ctx["shape"], ctx["pads"] = x.shape, pads
        return out

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        dx = ops.maxpool_backward(
            dout, ctx["argmax"], ctx["shape"], self.pool_size[0], self.pool_size[1], self.strides[0], 0
        )
        return _crop_nchw(dx, ctx["pads"]) if any(ctx["pads"]) else dx


class AveragePooling2D(_Pooling2D):
    """Average pooling (``ops.avgpool_*``).

    ``padding='same'`` works where it pads nothing; where it pads, Keras averages over the valid pixels only,
    which fastconv's kernel (padding counted as zeros) does not compute: NotImplementedError.
    """

    def compute_output_shape(self, input_shape):
        h, w, _ = self._hwc(input_shape)
        if self.padding == "same" and h is not None and w is not None and any(self._geometry(h, w)[0]):
            _unsupported(
                "AveragePooling2D(padding='same') on this input (an average over the valid pixels only)"
            )
        return super().compute_output_shape(input_shape)

    def _fwd1(self, x, ctx, training, logits):
        ctx["shape"] = x.shape
        return ops.avgpool_forward(x, self.pool_size[0], self.pool_size[1], self.strides[0], 0)

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        return ops.avgpool_backward(
            dout, ctx["shape"], self.pool_size[0], self.pool_size[1], self.strides[0], 0
        )


class _GlobalPooling2D(_ImageLayer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        _, _, c = self._hwc(input_shape)
        return self._image_shape(input_shape[0], 1, 1, c) if self.keepdims else (input_shape[0], c)

    def _fwd1(self, x, ctx, training, logits):
        n, c, h, w = x.shape
        ctx["shape"] = x.shape
        out = self._pool(x, ctx, h, w)  # (N, C, 1, 1): one window over the whole image
        return out if self.keepdims else out.reshape(n, c)

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        n, c, h, w = ctx["shape"]
        return self._unpool(dout.reshape(n, c, 1, 1), ctx, h, w)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over H and W (``ops.avgpool_*`` with one window over the whole image)."""

    def _pool(self, x, ctx, h, w):
        return ops.avgpool_forward(x, h, w, 1, 0)

    def _unpool(self, dout, ctx, h, w):
        return ops.avgpool_backward(dout, ctx["shape"], h, w, 1, 0)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over H and W (``ops.maxpool_*`` with one window over the whole image)."""

    def _pool(self, x, ctx, h, w):
        out, ctx["argmax"] = ops.maxpool_forward(x, h, w, 1, 0)
        return out

    def _unpool(self, dout, ctx, h, w):
        return ops.maxpool_backward(dout, ctx["argmax"], ctx["shape"], h, w, 1, 0)


# ======================================================================================================
# padding and cropping (pure layout)


def _pairs(value, name):
    """Keras' int / (sym_h, sym_w) / ((top, bottom), (left, right)) as (top, bottom, left, right)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)
        out = (v, v, v, v)
    else:
        try:
            a, b = value
            if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
                out = (int(a), int(a), int(b), int(b))
            else:
                (t, bo), (lf, r) = a, b
                out = (int(t), int(bo), int(lf), int(r))
        except (TypeError, ValueError):
            raise ValueError(
                f"`{name}` should be either an int, a tuple of 2 ints (symmetric_height_{name}, "
                f"symmetric_width_{name}), or a tuple of 2 tuples of 2 ints ((top_{name}, "
                f"bottom_{name}), (left_{name}, right_{name})). Received: {name}={value}."
            ) from None
    if min(out) < 0:
        raise ValueError(f"`{name}` cannot be negative. Received: {name}={value}.")
    return out


class UpSampling2D(_ImageLayer):
    """``UpSampling2D(size=(2, 2), interpolation='nearest' | 'bilinear')`` as Keras 3 (bilinear as
    ``align_corners=False``: half-pixel centres), on ``ops.upsample_*``."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        size = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
        try:
            self.size = tuple(int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"The `size` argument must be a tuple of 2 integers. Received: size={size}") from None
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"The `size` argument must be a tuple of 2 positive integers. Received: size={size}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                f"`interpolation` argument should be one of: 'nearest', 'bilinear' (fastconv's kernels). "
                f"Received: interpolation={interpolation}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        return self._image_shape(input_shape[0], None if h is None else h * self.size[0],
                                 None if w is None else w * self.size[1], c)

    def _fwd1(self, x, ctx, training, logits):
        ctx["shape"] = x.shape
        return ops.upsample_forward(x, self.size, self.interpolation)

    def _bwd1(self, dout, ctx, need_dx):
        return ops.upsample_backward(dout, ctx["shape"], self.size, self.interpolation) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": self.interpolation}


class ZeroPadding2D(_ImageLayer):
    """Zero rows and columns around images: ``ZeroPadding2D(padding=(1, 1))``."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.padding = _pairs(padding, "padding")

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        t, b, lf, r = self.padding
        return self._image_shape(
            input_shape[0], None if h is None else h + t + b, None if w is None else w + lf + r, c
        )

    def _fwd1(self, x, ctx, training, logits):
        return _pad_nchw(x, self.padding)

    def _bwd1(self, dout, ctx, need_dx):
        return _crop_nchw(dout, self.padding) if need_dx else None

    def get_config(self):
        t, b, lf, r = self.padding
        return {**super().get_config(), "padding": [[t, b], [lf, r]]}


class Cropping2D(_ImageLayer):
    """Remove rows and columns at the borders: ``Cropping2D(cropping=((0, 0), (0, 0)))``."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = _pairs(cropping, "cropping")

    def compute_output_shape(self, input_shape):
        h, w, c = self._hwc(input_shape)
        t, b, lf, r = self.cropping
        oh = None if h is None else h - t - b
        ow = None if w is None else w - lf - r
        if (oh is not None and oh <= 0) or (ow is not None and ow <= 0):
            raise ValueError(
                f"Values in `cropping` argument should be smaller than the corresponding spatial "
                f"dimension of the input. Received: input_shape={_fmt_shape(input_shape)}, "
                f"cropping={self.cropping}"
            )
        return self._image_shape(input_shape[0], oh, ow, c)

    def _fwd1(self, x, ctx, training, logits):
        ctx["shape"] = x.shape
        return _crop_nchw(x, self.cropping)

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        dx = np.zeros(ctx["shape"], dtype=dout.dtype)
        t, b, lf, r = self.cropping
        h, w = ctx["shape"][2], ctx["shape"][3]
        dx[:, :, t : h - b, lf : w - r] = dout
        return dx

    def get_config(self):
        t, b, lf, r = self.cropping
        return {**super().get_config(), "cropping": [[t, b], [lf, r]]}


# ======================================================================================================
# dense, flatten, reshape


class Dense(Layer):
    """``Dense(units, activation=None, use_bias=True, kernel_initializer='glorot_uniform', ...)``.

    ``ops.affine_*`` on the last axis (inputs of more than 2 dimensions are taken in Keras' layout and
    flattened to rows). A softmax activation on the model's output is fused with a cross-entropy loss in
    training; elsewhere a softmax layer cannot be trained (fastconv has no softmax backward kernel).
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Received an invalid value for `units`, expected a positive integer. Received: units={units}"
            )
        self.units = int(units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self._min_ndim = 2
        _reject(
            "Dense",
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            lora_rank=lora_rank,
        )

    def build(self, input_shape):
        d = input_shape[-1]
        if d is None:
            raise ValueError(
                f"The last dimension of the inputs to a Dense layer should be defined. Found None. "
                f"Full input shape received: {_fmt_shape(input_shape)}"
            )
        self.kernel = self._add_weight("kernel", (d, self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self._add_weight("bias", (self.units,), self.bias_initializer)
        else:
            self.bias = None
            self._zero_bias = np.zeros(self.units, dtype=self.dtype)
        self._axes = {-1: d}

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def _want_t(self, i, ndim, have):
        return False  # the last axis of Keras' layout

    def _fwd1(self, x, ctx, training, logits):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        out = ops.affine_forward(x2, self.kernel._data, self.bias._data if self.use_bias else self._zero_bias)
        ctx["x"] = x2
        return _act_forward(self.activation, out, ctx, logits).reshape(*lead, self.units)

    def _bwd1(self, dout, ctx, need_dx):
        shape = dout.shape
        dout = _act_backward(self.activation, dout.reshape(-1, self.units), ctx, self.name)
        dx, dW, db = ops.affine_backward(ctx["x"], self.kernel._data, dout)
        if self.trainable:
            self.kernel._accumulate(dW)
            if self.use_bias:
                self.bias._accumulate(db)
        return dx.reshape(*shape[:-1], dx.shape[-1]) if need_dx else None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }


class Flatten(Layer):
    """Flatten each sample, in Keras' order (channels-last (H, W, C): the same Dense weights as Keras')."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend.standardize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], n)

    def _want_t(self, i, ndim, have):
        return False

    def _fwd1(self, x, ctx, training, logits):
        ctx["shape"] = x.shape
        if self.data_format == "channels_first" and x.ndim > 2:  # Keras moves the channels last first
            x = x.transpose(0, *range(2, x.ndim), 1)
            ctx["moved"] = True
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        shape = ctx["shape"]
        if ctx.get("moved"):
            moved = (shape[0], *shape[2:], shape[1])
            return np.ascontiguousarray(
                dout.reshape(moved).transpose(0, len(shape) - 1, *range(1, len(shape) - 1))
            )
        return dout.reshape(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1), in Keras' layout."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d == 0 or d < -1 for d in self.target_shape):
            raise ValueError(
                f"The `target_shape` argument must be a tuple of positive integers with at most one "
                f"-1. Received: target_shape={target_shape}"
            )

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        n = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if n % known:
                raise ValueError(
                    f"The total size of the tensor must be unchanged. Received: input_shape="
                    f"{_fmt_shape(input_shape)}, target_shape={self.target_shape}"
                )
            out = tuple(n // known if d == -1 else d for d in self.target_shape)
        else:
            out = self.target_shape
        if math.prod(out) != n:
            raise ValueError(
                f"The total size of the tensor must be unchanged. Received: input_shape="
                f"{_fmt_shape(input_shape)}, target_shape={self.target_shape}"
            )
        return (input_shape[0], *out)

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _fwd1(self, x, ctx, training, logits):
        ctx["shape"] = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], *self.target_shape)

    def _bwd1(self, dout, ctx, need_dx):
        return dout.reshape(ctx["shape"]) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


# ======================================================================================================
# activations and dropout


class Activation(Layer):
    """``Activation('relu' | 'sigmoid' | 'tanh' | 'leaky_relu' | 'softmax' | 'linear')`` on fastconv's kernels."""

    _slope = _activations.LEAKY_SLOPE

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def _want_t(self, i, ndim, have):
        return have and self.activation != "softmax"  # softmax runs on Keras' last axis

    def _out_t(self, wants, out_shape):
        return wants[0]

    def _fwd1(self, x, ctx, training, logits):
        return _act_forward(self.activation, x, ctx, logits, slope=self._slope)

    def _bwd1(self, dout, ctx, need_dx):
        return _act_backward(self.activation, dout, ctx, self.name)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    """``ReLU()``: max(x, 0); with ``negative_slope`` a leaky ReLU. ``max_value`` and ``threshold`` other than
    Keras' defaults need kernels fastconv does not have."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__("relu", **kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: {max_value}")
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                f"negative_slope of a ReLU layer cannot be a negative value. Received: {negative_slope}"
            )
        if max_value is not None:
            _unsupported(f"ReLU(max_value={max_value}) (a clipped ReLU)")
        if threshold:
            _unsupported(f"ReLU(threshold={threshold}) (a thresholded ReLU)")
        self.negative_slope = float(negative_slope)
        if self.negative_slope:
            self.activation, self._slope = "leaky_relu", self.negative_slope

    def get_config(self):
        cfg = Layer.get_config(self)
        return {**cfg, "max_value": None, "negative_slope": self.negative_slope, "threshold": 0.0}


class LeakyReLU(Activation):
    """``LeakyReLU(negative_slope=0.3)`` as Keras 3: x for x >= 0, negative_slope * x below."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            raise ValueError("Argument `alpha` is no longer supported. Use `negative_slope` instead.")
        super().__init__("leaky_relu", **kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                "The negative_slope value of a Leaky ReLU layer cannot be None or negative value. Expected a "
                f"float. Received: negative_slope={negative_slope}"
            )
        self.negative_slope = self._slope = float(negative_slope)

    def get_config(self):
        return {**Layer.get_config(self), "negative_slope": self.negative_slope}


class Softmax(Activation):
    """``Softmax(axis=-1)``: on the model's output with a cross-entropy loss it is fused with the loss."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        if axis != -1:
            _unsupported(f"Softmax(axis={axis}) (fastconv's softmax runs on the last axis)")
        self.axis = -1

    def get_config(self):
        return {**Layer.get_config(self), "axis": -1}


class Dropout(Layer):
    """``Dropout(rate, noise_shape=None, seed=None)``: Keras' inverted dropout.

    The mask comes from ``ops.dropout_forward``; kept units are scaled by 1 / (1 - rate) in training (one
    in-place NumPy multiply: the kernel implements the book's dropout, which scales at inference instead), so
    inference is the identity, as in Keras.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float, np.integer, np.floating))
            or not 0 <= rate <= 1
        ):
            raise ValueError(
                f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                f"Received: rate={rate}"
            )
        if rate == 1:
            _unsupported("Dropout(rate=1) (dropping every unit)")
        self.rate = float(rate)
        _reject("Dropout", noise_shape=noise_shape)
        self.seed = seed
        self._gen = None if seed is None else np.random.default_rng(ops.check_seed(seed))

    def _fwd1(self, x, ctx, training, logits):
        if not training or self.rate == 0.0:
            ctx["mask"] = None
            return x
        g = backend.rng() if self._gen is None else self._gen
        out, ctx["mask"] = ops.dropout_forward(x, self.rate, int(g.integers(0, 2**63 - 1)))
        np.multiply(out, out.dtype.type(1.0 / (1.0 - self.rate)), out=out)
        return out

    def _bwd1(self, dout, ctx, need_dx):
        if not need_dx:
            return None
        if ctx["mask"] is None:
            return dout
        dx = ops.dropout_backward(dout, ctx["mask"])
        np.multiply(dx, dx.dtype.type(1.0 / (1.0 - self.rate)), out=dx)
        return dx

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# ======================================================================================================
# batch normalization


class BatchNormalization(Layer):
    """``BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True, ...)`` as Keras 3.

    Statistics per channel (the ``axis`` feature), over the batch and every other axis, by
    ``ops.batchnorm_*`` on the (samples * pixels, channels) view. Keras' defaults, not the book's: momentum
    0.99 (the weight of the old moving average), epsilon 1e-3, moving variance starting at 1. In training the
    moving statistics move toward the batch's (biased) variance, as Keras'; a non-trainable layer normalises
    with its moving statistics, as in Keras 3. Weights: [gamma, beta, moving_mean, moving_variance].
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=0.001,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                _unsupported(f"BatchNormalization(axis={axis}) (statistics over several feature axes)")
            axis = axis[0]
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        _reject(
            "BatchNormalization",
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            synchronized=synchronized,
        )

    def build(self, input_shape):
        nd = len(input_shape)
        if not -nd <= self.axis < nd or self.axis % nd == 0:
            raise ValueError(f"Invalid axis: {self.axis} for input shape {_fmt_shape(input_shape)}")
        c = input_shape[self.axis]
        if c is None:
            raise ValueError(
                f"Axis {self.axis} of input tensor should have a defined dimension but the layer "
                f"received an input with shape {_fmt_shape(input_shape)}."
            )
        self._axes = {self.axis % nd: c}
        self._ndim = nd
        self.gamma = self._add_weight("gamma", (c,), self.gamma_initializer) if self.scale else None
        self.beta = self._add_weight("beta", (c,), self.beta_initializer) if self.center else None
        self.moving_mean = self._add_weight(
            "moving_mean", (c,), self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self._add_weight(
            "moving_variance", (c,), self.moving_variance_initializer, trainable=False
        )
        self._ones = np.ones(c, dtype=self.dtype)
        self._zeros = np.zeros(c, dtype=self.dtype)

    def _want_t(self, i, ndim, have):
        return False  # Keras' layout: channels-last images put the channel axis last, as the kernel wants it

    def _rows(self, x):
        """x as (rows, C) with the channel axis last (a transpose only when it is not last already)."""
        ax = self.axis % x.ndim
        if ax == x.ndim - 1:
            return x.reshape(-1, x.shape[-1]), None
        perm = (*[a for a in range(x.ndim) if a != ax], ax)
        xt = np.ascontiguousarray(x.transpose(perm))
        return xt.reshape(-1, xt.shape[-1]), (perm, xt.shape)

    @staticmethod
    def _unrows(y, how, shape):
        if how is None:
            return y.reshape(shape)
        perm, tshape = how
        return np.ascontiguousarray(y.reshape(tshape).transpose(np.argsort(perm)))

    def _fwd1(self, x, ctx, training, logits):
        x2, how = self._rows(x)
        gamma = self.gamma._data if self.scale else self._ones
        beta = self.beta._data if self.center else self._zeros
        mm, mv = self.moving_mean._data, self.moving_variance._data
        ctx["how"], ctx["shape"] = how, x.shape
        if training and self.trainable:
            out, ctx["xc"], ctx["xn"], ctx["std"] = ops.batchnorm_forward_train(
                x2, gamma, beta, mm, mv, self.momentum, self.epsilon
            )
            ctx["train"] = True
        else:
            out = ops.batchnorm_forward_infer(x2, gamma, beta, mm, mv, self.epsilon)
            ctx["train"] = False
        return self._unrows(out, how, x.shape)

    def _bwd1(self, dout, ctx, need_dx):
        if not ctx["train"]:
            _unsupported(
                f"backpropagating through BatchNormalization {self.name} in inference mode (a frozen "
                "layer inside a trained model)"
            )
        d2, _ = self._rows(dout)
        gamma = self.gamma._data if self.scale else self._ones
        dx, dgamma, dbeta = ops.batchnorm_backward(d2, ctx["xc"], ctx["xn"], ctx["std"], gamma)
        if self.scale:
            self.gamma._accumulate(dgamma)
        if self.center:
            self.beta._accumulate(dbeta)
        return self._unrows(dx, ctx["how"], ctx["shape"]) if need_dx else None

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(self.moving_variance_initializer),
        }


# ======================================================================================================
# merging


class _Merge(Layer):
    _n_inputs = None

    def _want_t(self, i, ndim, have):
        return self._first_t  # every input in the first one's layout

    def _call_symbolic(self, flat):
        if len(flat) < 2:
            raise ValueError(
                f"A merge layer should be called on a list of at least 2 inputs. Got {len(flat)} inputs."
            )
        self._first_t = flat[0]._t
        return super()._call_symbolic(flat)

    def _call_eager(self, arrays, training):
        if len(arrays) < 2:
            raise ValueError(
                f"A merge layer should be called on a list of at least 2 inputs. Got {len(arrays)} inputs."
            )
        self._first_t = False
        return super()._call_eager(arrays, training)

    def _out_t(self, wants, out_shape):
        return bool(wants[0]) and len(out_shape) == 4


class Add(_Merge):
    """Sum of inputs of one shape (NumPy's add: fastconv has no element-wise add kernel; its backward hands
    the gradient to every input)."""

    def compute_output_shape(self, input_shape):
        first = tuple(input_shape[0])
        for s in input_shape[1:]:
            if tuple(s)[1:] != first[1:]:
                raise ValueError(f"Inputs have incompatible shapes. Received shapes {first} and {tuple(s)}")
        return first

    def _forward(self, xs, ctx, training, logits):
        out = np.add(xs[0], xs[1])
        for x in xs[2:]:
            np.add(out, x, out=out)
        ctx["n"] = len(xs)
        return out

    def _backward(self, dout, ctx, need):
        return [dout if n else None for n in need]


class Concatenate(_Merge):
    """Concatenation along ``axis`` (default -1, the channels of channels-last images)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        nd = len(shapes[0])
        ax = self.axis % nd
        if ax == 0:
            raise ValueError("Concatenate: cannot concatenate along the batch axis")
        out = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != nd or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i not in (0, ax)):
                raise ValueError(
                    "A `Concatenate` layer requires inputs with matching shapes except for the concat "
                    f"axis. Received: input_shape={shapes}"
                )
        out[ax] = None if any(s[ax] is None for s in shapes) else sum(s[ax] for s in shapes)
        return tuple(out)

    def _forward(self, xs, ctx, training, logits):
        ax = self.axis % xs[0].ndim
        if ctx["_wants"][0]:  # logical (N, H, W, C) held as (N, C, H, W)
            ax = {1: 2, 2: 3, 3: 1}[ax]
        ctx["ax"], ctx["sizes"] = ax, [x.shape[ax] for x in xs]
        return np.concatenate(xs, axis=ax)

    def _backward(self, dout, ctx, need):
        ax, sizes = ctx["ax"], ctx["sizes"]
        parts = np.split(dout, np.cumsum(sizes)[:-1], axis=ax)
        return [np.ascontiguousarray(p) if n else None for p, n in zip(parts, need)]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# every layer a saved model may name (load_model builds only these)
LAYERS = {
    cls.__name__: cls
    for cls in (
        InputLayer,
        Conv2D,
        Conv2DTranspose,
        DepthwiseConv2D,
        SeparableConv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        ZeroPadding2D,
        Cropping2D,
        UpSampling2D,
        Dense,
        Flatten,
        Reshape,
        Activation,
        ReLU,
        LeakyReLU,
        Softmax,
        Dropout,
        BatchNormalization,
        Add,
        Concatenate,
    )
}


# ======================================================================================================
# sequence layers (issue 20): Embedding, SimpleRNN / LSTM / GRU, LayerNormalization, MultiHeadAttention and a
# Transformer encoder. Sequences are (N, T, D) in Keras' layout and fastconv's alike, so no layout changes.


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive integer. Received: "
            f"{name}={value}"
        )
    return int(value)


def _only(layer: str, name: str, value, allowed) -> None:
    """A Keras argument whose other values need a kernel fastconv does not have."""
    if value not in allowed:
        _unsupported(f"{layer}({name}={value!r}) (fastconv's kernels compute {name}={allowed[0]!r})")


class Embedding(Layer):
    """``Embedding(input_dim, output_dim, embeddings_initializer='uniform', mask_zero=False, ...)``.

    Integer ids (N, ...) -> rows of the table (N, ..., output_dim) through ``ops.embedding_forward`` (gather)
    and ``ops.embedding_backward`` (scatter-add). Ids given as floats (a model casts its inputs to the Input's
    dtype) are cast back to integers. ``input_length`` (Keras 2's argument, which tutorials still pass) is
    accepted and ignored, as Keras 3 does; ``mask_zero=True`` is not supported (fastconv's recurrent kernels
    take no mask).
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        input_length=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_dim = _positive(input_dim, "input_dim")
        self.output_dim = _positive(output_dim, "output_dim")
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        if self.mask_zero:
            _unsupported("Embedding(mask_zero=True) (masked steps in the recurrent layers)")
        _reject(
            "Embedding",
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            lora_rank=lora_rank,
        )
        self._initial_weights = weights

    def build(self, input_shape):
        self.embeddings = self._add_weight(
            "embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer
        )
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _fwd1(self, x, ctx, training, logits):
        idx = x if x.dtype.kind in "iu" else x.astype(np.int64)
        if x.dtype.kind == "f" and not np.array_equal(idx, x):
            raise ValueError(f'Layer "{self.name}": expected integer ids, got non-integer values')
        ctx["idx"] = idx
        return ops.embedding_forward(self.embeddings._data, idx)

    def _bwd1(self, dout, ctx, need_dx):
        # integer ids have no gradient: only the table's is computed
        if self.trainable:
            self.embeddings._accumulate(ops.embedding_backward(dout, ctx["idx"], self.embeddings._data.shape))

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
        }


def _gate_perm(order, units: int):
    """Column indices that reorder k blocks of ``units`` columns: block i of the result is block order[i]."""
    return np.concatenate([np.arange(b * units, (b + 1) * units) for b in order])


class _RNN(Layer):
    """Shared by SimpleRNN, LSTM and GRU: arguments, weights (Keras' kernel (D, G*units), recurrent_kernel
    (units, G*units), bias), ``return_sequences`` and ``go_backwards`` over a whole-sequence kernel.

    Weights are stored in the kernel's gate layout; ``_to_kernel`` / ``_to_keras`` translate (a column
    permutation, and for the GRU without ``reset_after`` a sign) once per ``set_weights`` / ``get_weights``,
    never per call.
    """

    _gates = 1
    _has_recurrent_activation = False

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.units = _positive(units, "units")
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        _only(cls, "activation", activation, ("tanh",))
        if self._has_recurrent_activation:
            _only(cls, "recurrent_activation", recurrent_activation, ("sigmoid",))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        for name, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(
                    f"Invalid value received for argument `{name}`: {v!r}; expected a float in [0, 1]"
                )
            if v:
                _unsupported(f"{cls}({name}={v}) (dropout inside the recurrent kernel)")
        _reject(
            cls,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        if return_state:
            _unsupported(f"{cls}(return_state=True) (layers with several outputs)")
        if stateful:
            _unsupported(f"{cls}(stateful=True)")
        self.return_sequences = bool(return_sequences)
        self.go_backwards = bool(go_backwards)
        self.seed = seed
        self._ndim = 3

    # ---- layouts: identity by default; LSTM and GRU override

    def _to_kernel(self, a):
        return a

    def _to_keras(self, a):
        return a

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        d = input_shape[-1]
        if d is None:
            raise ValueError(
                f"The last dimension of the inputs to {type(self).__name__} should be defined. Found None."
            )
        G = self._gates * self.units
        conv = {"to_keras": self._to_keras, "from_keras": self._to_kernel}
        self.kernel = self._add_weight("kernel", (d, G), self.kernel_initializer, **conv)
        self.recurrent_kernel = self._add_weight(
            "recurrent_kernel", (self.units, G), self.recurrent_initializer, **conv
        )
        if self.use_bias:
            self.bias = self._add_weight("bias", self._bias_shape(), self._bias_init(), **conv)
        self._axes = {-1: d}

    def compute_output_shape(self, input_shape):
        return (
            (input_shape[0], input_shape[1], self.units)
            if self.return_sequences
            else (input_shape[0], self.units)
        )

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _bias_data(self):
        if self.use_bias:
            return self.bias._data
        return np.zeros(self._bias_shape(), dtype=self.dtype)

    def _fwd1(self, x, ctx, training, logits):
        if self.go_backwards:
            x = x[:, ::-1]
        x = np.ascontiguousarray(x)
        h0 = np.zeros((x.shape[0], self.units), dtype=x.dtype)
        ctx["x"], ctx["h0"] = x, h0
        hs = self._run(x, h0, ctx)
        ctx["T"] = hs.shape[1]
        return hs if self.return_sequences else np.ascontiguousarray(hs[:, -1])

    def _bwd1(self, dout, ctx, need_dx):
        if self.return_sequences:
            dhs = np.ascontiguousarray(dout)
        else:
            dhs = np.zeros((dout.shape[0], ctx["T"], self.units), dtype=dout.dtype)
            dhs[:, -1] = dout
        dx, dWx, dWh, db = self._grads(dhs, ctx)
        if self.trainable:
            self.kernel._accumulate(dWx)
            self.recurrent_kernel._accumulate(dWh)
            if self.use_bias:
                self.bias._accumulate(db)
        if not need_dx:
            return None
        return dx[:, ::-1] if self.go_backwards else dx

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            "seed": self.seed,
        }


class SimpleRNN(_RNN):
    """``SimpleRNN(units, activation='tanh', use_bias=True, return_sequences=False, go_backwards=False,
    ...)``: ``h_t = tanh(x_t W + h_{t-1} U + b)`` over the whole sequence in one ``ops.rnn_forward`` call
    (Keras' and the kernel's layouts agree). Only ``activation='tanh'`` (the default) has a kernel."""

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)  # SimpleRNN has none
        super().__init__(units, activation=activation, **kwargs)

    def _run(self, x, h0, ctx):
        hs = ops.rnn_forward(x, self.kernel._data, self.recurrent_kernel._data, self._bias_data(), h0)
        ctx["hs"] = hs
        return hs

    def _grads(self, dhs, ctx):
        dx, dWx, dWh, db, _ = ops.rnn_backward(
            ctx["x"], self.kernel._data, self.recurrent_kernel._data, ctx["h0"], ctx["hs"], dhs
        )
        return dx, dWx, dWh, db


# Keras' LSTM gate blocks are (i, f, c, o); the kernel's (the sequel's) are (f, g, i, o) with g = c
_LSTM_TO_KERNEL = (1, 2, 0, 3)
_LSTM_TO_KERAS = (2, 0, 1, 3)


class LSTM(_RNN):
    """``LSTM(units, activation='tanh', recurrent_activation='sigmoid', use_bias=True, unit_forget_bias=True,
    return_sequences=False, go_backwards=False, ...)`` on ``ops.lstm_forward`` / ``lstm_backward``.

    Keras' weights have gate blocks (i, f, c, o); they are stored in the kernel's order (f, g, i, o), the
    columns permuted when weights are set or read. ``unit_forget_bias`` initialises the forget gate's bias to
    ones.
    """

    _gates = 4
    _has_recurrent_activation = True

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)

    def _to_kernel(self, a):
        return np.ascontiguousarray(a[..., _gate_perm(_LSTM_TO_KERNEL, self.units)])

    def _to_keras(self, a):
        return a[..., _gate_perm(_LSTM_TO_KERAS, self.units)]

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, u = self.bias_initializer, self.units

        def forget_ones(shape, dtype=None):
            b = np.asarray(init((shape[0],), dtype=dtype))
            b[u : 2 * u] = 1  # Keras' block f
            return b

        return forget_ones

    def _run(self, x, h0, ctx):
        hs, cs, gates = ops.lstm_forward(
            x, self.kernel._data, self.recurrent_kernel._data, self._bias_data(), h0, h0
        )
        ctx.update(hs=hs, cs=cs, gates=gates)
        return hs

    def _grads(self, dhs, ctx):
        dx, dWx, dWh, db, _, _ = ops.lstm_backward(
            ctx["x"],
            self.kernel._data,
            self.recurrent_kernel._data,
            ctx["h0"],
            ctx["h0"],
            ctx["hs"],
            ctx["cs"],
            ctx["gates"],
            dhs,
        )
        return dx, dWx, dWh, db

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "unit_forget_bias": self.unit_forget_bias,
        }


class GRU(_RNN):
    """``GRU(units, activation='tanh', recurrent_activation='sigmoid', use_bias=True, reset_after=True,
    return_sequences=False, go_backwards=False, ...)``, gate blocks (z, r, h) as Keras'.

    ``reset_after=True`` (Keras 3's default: ``h~ = tanh(x Wh + bh + r * (h Uh + ch))``, bias (2, 3*units):
    the input bias, then the recurrent one) runs ``ops.gru_reset_after_*``. ``reset_after=False`` (``h~ =
    tanh(x Wh + (r * h) Uh + bh)``) is the sequel's GRU, ``ops.gru_*``, whose update gate is Keras' 1 - z:
    since 1 - sigmoid(a) = sigmoid(-a), the z columns are stored negated.
    """

    _gates = 3
    _has_recurrent_activation = True

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _to_kernel(self, a):
        if self.reset_after:
            return a
        a = np.array(a, copy=True)
        a[..., : self.units] *= -1
        return a

    _to_keras = _to_kernel  # negating the z columns is its own inverse

    def _run(self, x, h0, ctx):
        Wx, Wh, b = self.kernel._data, self.recurrent_kernel._data, self._bias_data()
        if self.reset_after:
            hs, gates, rec = ops.gru_reset_after_forward(x, Wx, Wh, b[0], b[1], h0)
        else:
            hs, gates, rec = ops.gru_forward(x, Wx, Wh, b, h0)
        ctx.update(hs=hs, gates=gates, rec=rec)
        return hs

    def _grads(self, dhs, ctx):
        args = (
            ctx["x"],
            self.kernel._data,
            self.recurrent_kernel._data,
            ctx["h0"],
            ctx["hs"],
            ctx["gates"],
            ctx["rec"],
            dhs,
        )
        if self.reset_after:
            dx, dWx, dWh, dbx, dbh, _ = ops.gru_reset_after_backward(*args)
            return dx, dWx, dWh, np.stack([dbx, dbh])
        dx, dWx, dWh, db, _ = ops.gru_backward(*args)
        return dx, dWx, dWh, db

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "reset_after": self.reset_after,
        }


class LayerNormalization(Layer):
    """``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True, ...)`` (Keras' epsilon 1e-3, where
    torch.nn.LayerNorm's is 1e-5) on ``ops.layernorm_*``; weights [gamma, beta] as Keras'. Only the last axis
    has a kernel."""

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        rms_scaling=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(
                f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis}"
            )
        self.axis = int(axis)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon > 0:
            raise ValueError(
                f"Invalid value received for argument `epsilon`: {epsilon}; expected a float > 0"
            )
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        if rms_scaling:
            _unsupported("LayerNormalization(rms_scaling=True)")
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        _reject(
            "LayerNormalization",
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )
        self._min_ndim = 1

    def build(self, input_shape):
        nd = len(input_shape)
        if not -nd <= self.axis < nd:
            raise ValueError(f"Invalid value for `axis` argument: {self.axis}; the input has rank {nd}")
        if self.axis % nd != nd - 1:
            _unsupported(
                f"LayerNormalization(axis={self.axis}) (fastconv normalises over the last axis only)"
            )
        d = input_shape[-1]
        self.gamma = self._add_weight("gamma", (d,), self.gamma_initializer) if self.scale else None
        self.beta = self._add_weight("beta", (d,), self.beta_initializer) if self.center else None
        self._ones, self._zeros = np.ones(d, dtype=self.dtype), np.zeros(d, dtype=self.dtype)
        self._axes = {-1: d}

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _fwd1(self, x, ctx, training, logits):
        gamma = self.gamma._data if self.scale else self._ones
        out, mean, rstd = ops.layernorm_forward(
            x, gamma, self.beta._data if self.center else self._zeros, eps=self.epsilon
        )
        ctx.update(x=x, gamma=gamma, mean=mean, rstd=rstd)
        return out

    def _bwd1(self, dout, ctx, need_dx):
        dx, dgamma, dbeta = ops.layernorm_backward(ctx["x"], ctx["gamma"], ctx["mean"], ctx["rstd"], dout)
        if self.trainable:
            if self.scale:
                self.gamma._accumulate(dgamma)
            if self.center:
                self.beta._accumulate(dbeta)
        return dx if need_dx else None

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
        }


class _AttentionWeights:
    """The 8 Keras-shaped weights of a multi-head attention, stored as the 2-D matrices and flat biases of
    ``time_layers.MultiHeadAttention`` (a reshape of the same values: Keras' query kernel (D, heads, key_dim)
    is the (D, heads * key_dim) matrix row for row)."""

    @staticmethod
    def add(layer, prefix, dq, dk, dv, dout, heads, kd, vd, use_bias, kinit, binit):
        out = []
        for name, d, e in (("query", dq, kd), ("key", dk, kd), ("value", dv, vd)):
            out.append(
                layer._add_weight(
                    f"{prefix}{name}/kernel",
                    (d, heads, e),
                    kinit,
                    to_keras=lambda a, s=(d, heads, e): a.reshape(s),
                    from_keras=lambda a, s=(d, heads * e): a.reshape(s),
                )
            )
            out.append(
                layer._add_weight(
                    f"{prefix}{name}/bias",
                    (heads, e),
                    binit,
                    to_keras=lambda a, s=(heads, e): a.reshape(s),
                    from_keras=lambda a: a.reshape(-1),
                )
                if use_bias
                else None
            )
        out.append(
            layer._add_weight(
                f"{prefix}attention_output/kernel",
                (heads, vd, dout),
                kinit,
                to_keras=lambda a, s=(heads, vd, dout): a.reshape(s),
                from_keras=lambda a, s=(heads * vd, dout): a.reshape(s),
            )
        )
        out.append(layer._add_weight(f"{prefix}attention_output/bias", (dout,), binit) if use_bias else None)
        return out

    @staticmethod
    def arrays(variables, dtype):
        """The kernel-layout arrays, zeros for the biases of a layer without them."""
        kernels = [variables[i]._data for i in (0, 2, 4, 6)]
        biases = [
            v._data if v is not None else np.zeros(k.shape[1], dtype=dtype)
            for v, k in zip(variables[1::2], kernels)
        ]
        return [a for pair in zip(kernels, biases) for a in pair]


def _accumulate_grads(variables, grads, trainable) -> None:
    """Hand a time layer's gradients (arrays it overwrites at its next backward: copied) to the variables."""
    if trainable:
        for v, g in zip(variables, grads):
            if v is not None:
                v._accumulate(g.copy())


class MultiHeadAttention(Layer):
    """``MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
    ...)``, called as ``mha(query, value, key=None, training=None)`` on (N, T, D) sequences.

    Keras' weights and order ([query, key, value, attention_output] x [kernel, bias], kernels (D, heads, dim),
    the output kernel (heads, value_dim, D_out)), so ``get_weights`` / ``set_weights`` interchange with Keras.
    The computation is ``time_layers.MultiHeadAttention``: projections by ``ops.affine_*``, every head's
    softmax(q k^T / sqrt(key_dim)) v by ``ops.sdpa_*``, ``dropout`` on the attention weights in training.
    Masks, ``attention_axes`` and ``return_attention_scores`` are not supported.
    """

    _n_inputs = None

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = _positive(num_heads, "num_heads")
        self.key_dim = _positive(key_dim, "key_dim")
        self.value_dim = self.key_dim if value_dim is None else _positive(value_dim, "value_dim")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                f"Invalid value received for argument `dropout`: {dropout!r}; expected a float in [0, 1)"
            )
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (list, tuple)) and len(output_shape) == 1:
            output_shape = output_shape[0]
        self.output_shape_ = None if output_shape is None else _positive(output_shape, "output_shape")
        if attention_axes is not None:
            _unsupported("MultiHeadAttention(attention_axes=...) (attention over the sequence axis only)")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        _reject(
            "MultiHeadAttention",
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.seed = seed

    def __call__(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        for name, v in (
            ("query_mask", query_mask),
            ("value_mask", value_mask),
            ("key_mask", key_mask),
            ("attention_mask", attention_mask),
        ):
            if v is not None:
                _unsupported(f"MultiHeadAttention({name}=...)")
        if return_attention_scores or use_causal_mask:
            _unsupported("MultiHeadAttention(return_attention_scores / use_causal_mask)")
        if value is None and isinstance(query, (list, tuple)) and len(query) == 3:
            query, value, key = query  # the node's inputs as a loaded model passes them: [query, value, key]
        if value is None:
            raise ValueError(
                f'Layer "{self.name}" is called as mha(query, value, key=None): `value` is missing'
            )
        return super().__call__([query, value, value if key is None else key], training=training)

    def build(self, input_shape):
        q, v, k = (tuple(s) for s in input_shape)
        for name, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3 or s[-1] is None:
                raise ValueError(
                    f'Layer "{self.name}": {name} must be (batch, steps, features), got {_fmt_shape(s)}'
                )
        self._vars = _AttentionWeights.add(
            self,
            "",
            q[-1],
            k[-1],
            v[-1],
            self.output_shape_ or q[-1],
            self.num_heads,
            self.key_dim,
            self.value_dim,
            self.use_bias,
            self.kernel_initializer,
            self.bias_initializer,
        )
        self._mha = time_layers.MultiHeadAttention(
            *_AttentionWeights.arrays(self._vars, self.dtype), num_heads=self.num_heads, dropout=self.dropout
        )

    def compute_output_shape(self, input_shape):
        q = tuple(input_shape[0])
        return (*q[:-1], self.output_shape_ or q[-1])

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _forward(self, xs, ctx, training, logits):
        self._mha.train_flg = bool(training)
        q, v, k = xs
        out = self._mha.forward(q, k, v)
        ctx["cache"] = self._mha._cache  # a layer called at several nodes keeps each node's
        return out

    def _backward(self, dout, ctx, need):
        self._mha._cache = ctx["cache"]
        dq, dk, dv = self._mha.backward(dout)
        _accumulate_grads(self._vars, self._mha.grads, self.trainable)
        return [d if n else None for d, n in zip((dq, dv, dk), need)]

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self.output_shape_,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }


class TransformerEncoder(Layer):
    """``TransformerEncoder(intermediate_dim=2048, num_heads=8, dropout=0.1, activation='relu',
    layer_norm_epsilon=1e-5, normalize_first=False)``: the encoder layer of the PyTorch tutorial,
    ``torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation='relu',
    layer_norm_eps, batch_first=True, norm_first)``, on (N, T, d_model) sequences (d_model from the input).

    Self-attention (key_dim = d_model / num_heads), dropout, add & norm, then Linear(intermediate_dim), ReLU,
    dropout, Linear(d_model), dropout, add & norm (keras_hub's argument names; torch's defaults and its
    dropout after the ReLU). The computation is ``time_layers.TransformerEncoderLayer``. Weights: the
    attention's 8 as ``MultiHeadAttention``'s, then the two feed-forward kernels (in, out) and biases, then
    gamma and beta of the two layer norms.
    """

    def __init__(
        self,
        intermediate_dim=2048,
        num_heads=8,
        dropout=0.1,
        activation="relu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.intermediate_dim = _positive(intermediate_dim, "intermediate_dim")
        self.num_heads = _positive(num_heads, "num_heads")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                f"Invalid value received for argument `dropout`: {dropout!r}; expected a float in [0, 1)"
            )
        self.dropout = float(dropout)
        _only("TransformerEncoder", "activation", activation, ("relu",))
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        if not self.layer_norm_epsilon > 0:
            raise ValueError(
                f"Invalid value received for argument `layer_norm_epsilon`: {layer_norm_epsilon}; "
                "expected a float > 0"
            )
        self.normalize_first = bool(normalize_first)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self._ndim = 3

    def build(self, input_shape):
        d = input_shape[-1]
        if d is None or d % self.num_heads:
            raise ValueError(
                f'Layer "{self.name}": the feature size of the input ({d}) must be a multiple of '
                f"num_heads={self.num_heads}"
            )
        h, ff = self.num_heads, self.intermediate_dim
        self._vars = _AttentionWeights.add(
            self,
            "self_attention/",
            d,
            d,
            d,
            d,
            h,
            d // h,
            d // h,
            True,
            self.kernel_initializer,
            self.bias_initializer,
        )
        self._vars += [
            self._add_weight("feedforward_intermediate/kernel", (d, ff), self.kernel_initializer),
            self._add_weight("feedforward_intermediate/bias", (ff,), self.bias_initializer),
            self._add_weight("feedforward_output/kernel", (ff, d), self.kernel_initializer),
            self._add_weight("feedforward_output/bias", (d,), self.bias_initializer),
        ]
        for name in ("self_attention_layer_norm", "feedforward_layer_norm"):
            self._vars += [
                self._add_weight(f"{name}/gamma", (d,), "ones"),
                self._add_weight(f"{name}/beta", (d,), "zeros"),
            ]
        arrays = [v._data for v in self._vars]
        self._block = time_layers.TransformerEncoderLayer(
            arrays[:8],
            *arrays[8:],
            nhead=h,
            dropout=self.dropout,
            layer_norm_eps=self.layer_norm_epsilon,
            norm_first=self.normalize_first,
        )
        self._axes = {-1: d}

    def _want_t(self, i, ndim, have):
        return False

    def _out_t(self, wants, out_shape):
        return False

    def _fwd1(self, x, ctx, training, logits):
        self._block.train_flg = bool(training)
        return self._block.forward(x)

    def _bwd1(self, dout, ctx, need_dx):
        dx = self._block.backward(dout)
        _accumulate_grads(self._vars, self._block.grads, self.trainable)
        return dx if need_dx else None

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "normalize_first": self.normalize_first,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }


LAYERS.update(
    {
        cls.__name__: cls
        for cls in (
            Embedding,
            SimpleRNN,
            LSTM,
            GRU,
            LayerNormalization,
            MultiHeadAttention,
            TransformerEncoder,
        )
    }
)
