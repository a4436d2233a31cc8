"""The book's layers (``common/layers.py``) on fastconv's kernels.

Same class names, constructor signatures, methods and public attributes as the book, so
``from fastconv.layers import *`` replaces ``from common.layers import *``. Parameters (``W``, ``b``,
``gamma``, ``beta``) are read at every call: the book's optimizers update them in place and its
``load_params`` rebinds them. Every computation goes through :mod:`fastconv.ops`.
"""

from __future__ import annotations

import numpy as np

from . import ops
from ._backend import is_half

__all__ = [
    "Relu",
    "Sigmoid",
    "Affine",
    "SoftmaxWithLoss",
    "Dropout",
    "BatchNormalization",
    "Convolution",
    "Deconvolution",
    "Pooling",
    "AvgPooling",
    "ZeroPadding",
    "Cropping",
]


def _check_batch(x, name: str = "x") -> None:
    """A batch (N, ...) with N >= 1 and at least one feature, before it is flattened to (N, -1)."""
    if x.ndim < 2:
        raise ValueError(f"{name}: expected a batch (N, ...) with at least 2 dimensions, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: empty array (shape {x.shape}); every dimension must be >= 1")


# ======================================================================================================
# activations


class _Elementwise:
    """An activation that keeps its output for the backward pass: ``out = _forward(x)``,
    ``dx = _backward(dout, out)`` (the ops functions named by the subclass)."""

    _forward = _backward = None

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = type(self)._forward(x)
        return self.out

    def backward(self, dout):
        return type(self)._backward(dout, self.out)


class Relu(_Elementwise):
    """ReLU: ``max(0, x)``."""

    _forward, _backward = staticmethod(ops.relu_forward), staticmethod(ops.relu_backward)

    @property
    def mask(self):
        """Where the input was <= 0 (the book's attribute), derived from the stored output."""
        return None if self.out is None else self.out <= 0


class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""

    _forward, _backward = staticmethod(ops.sigmoid_forward), staticmethod(ops.sigmoid_backward)


# ======================================================================================================
# affine, loss, dropout


class Affine:
    """Fully connected layer ``x @ W + b``; inputs of any ndim >= 2 are flattened to (N, -1)."""

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        x = ops.as_array(x, "x")
        _check_batch(x)
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return ops.affine_forward(self.x, self.W, self.b)

    def backward(self, dout):
        dx, self.dW, self.db = ops.affine_backward(self.x, self.W, dout)
        return dx.reshape(self.original_x_shape)


class _LossLayer:
    """A network's last layer: ``forward(x, t)`` returns the loss, ``backward(dout=1)`` its gradient in x.

    ``loss_scale`` (default 1) multiplies the gradient handed back, as if the loss had been multiplied by it:
    mixed-precision training (:mod:`fastconv.precision`) sets it so that small float16 gradients do not
    flush to zero, and divides the parameters' gradients by it again in float32. The book's ``gradient()``
    methods call ``backward(1)`` and need no change.
    """

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None
        self.loss_scale = 1.0

    def backward(self, dout=1):
        return self._backward(dout if self.loss_scale == 1.0 else dout * self.loss_scale)


class SoftmaxWithLoss(_LossLayer):
    """Softmax followed by the mean cross-entropy; ``t`` is integer labels or one-hot targets."""

    def forward(self, x, t):
        self.t = t
        self.loss, self.y = ops.softmax_cross_entropy(x, t)
        return self.loss

    def _backward(self, dout):
        return ops.softmax_cross_entropy_backward(self.y, self.t, dout)


class Dropout:
    """Dropout (http://arxiv.org/abs/1207.0580): in training keep each unit with probability 1 - ratio.

    The mask is drawn by a C++ counter-based generator. With ``seed=None`` each call takes its key from
    NumPy's global generator, so ``np.random.seed`` makes runs repeatable as in the book; with an int seed
    the layer has its own repeatable sequence.
    """

    def __init__(self, dropout_ratio=0.5, seed=None):
        self.dropout_ratio = dropout_ratio
        self.mask = None
        self._rng = None if seed is None else np.random.default_rng(ops.check_seed(seed))

    def _next_key(self) -> int:
        if self._rng is None:
            return int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        return int(self._rng.integers(0, 2**63 - 1))

    def forward(self, x, train_flg=True):
        if train_flg:
            out, self.mask = ops.dropout_forward(x, self.dropout_ratio, self._next_key())
            return out
        return ops.dropout_infer(x, self.dropout_ratio)

    def backward(self, dout):
        return ops.dropout_backward(dout, self.mask)


class BatchNormalization:
    """Batch normalization (http://arxiv.org/abs/1502.03167) with the book's semantics.

    Inputs of ndim != 2 are flattened to (N, -1) and normalised per feature (as the book does), so
    ``gamma`` and ``beta`` have C*H*W elements for a 4-D input.
    """

    eps = 10e-7  # the book's epsilon

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        x = ops.as_array(x, "x")
        _check_batch(x)
        self.input_shape = x.shape
        x2 = x.reshape(x.shape[0], -1)
        d = x2.shape[1]
        dtype = x2.dtype if x2.dtype.kind == "f" or is_half(x2.dtype) else np.dtype(np.float64)
        if self.running_mean is None:
            self.running_mean = np.zeros(d, dtype=dtype)
        if self.running_var is None:
            self.running_var = np.zeros(d, dtype=dtype)
        if train_flg:
            out, self.xc, self.xn, self.std = ops.batchnorm_forward_train(
                x2, self.gamma, self.beta, self.running_mean, self.running_var, self.momentum, self.eps
            )
            self.batch_size = x2.shape[0]
        else:
            out = ops.batchnorm_forward_infer(x2, self.gamma, self.beta, self.running_mean, self.running_var,
                                              self.eps)
        return out.reshape(self.input_shape)

    def backward(self, dout):
        dout = ops.as_array(dout, "dout")
        _check_batch(dout, "dout")
        dx, dgamma, dbeta = ops.batchnorm_backward(dout.reshape(dout.shape[0], -1), self.xc, self.xn, self.std,
                                                   self.gamma)
        self.dgamma = dgamma.reshape(np.shape(self.gamma))
        self.dbeta = dbeta.reshape(np.shape(self.beta))
        return dx.reshape(self.input_shape)


# ======================================================================================================
# convolution and pooling


class Convolution:
    """2-D convolution (cross-correlation) with filters W (FN, C/groups, FH, FW) and bias b (FN,).

    The book's ``Convolution(W, b, stride, pad)``, extended: ``b=None`` means no bias (``db`` stays None);
    ``stride`` an int or (sh, sw); ``pad`` an int, (ph, pw), (top, bottom, left, right), "valid" or "same"
    (TensorFlow's rule: output ceil(H / sh), the odd pixel of padding at the bottom / right); ``dilation`` an int
    or (dh, dw); ``groups`` splits channels and filters into independent convolutions (``groups == C``: a
    depthwise convolution, with its own direct kernel).
    """

    def __init__(self, W, b=None, stride=1, pad=0, dilation=1, groups=1):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.dilation = dilation
        self.groups = groups
        self.x = None
        self.dW = None
        self.db = None

    def _geometry(self) -> dict:
        return {"dilation": self.dilation, "groups": self.groups}

    def forward(self, x):
        out = ops.conv_forward(x, self.W, self.b, self.stride, self.pad, **self._geometry())
        self.x = x
        return out

    def forward_relu(self, x, relu):
        """``relu.forward(self.forward(x))`` in one pass: the ReLU is applied as the convolution writes its
        output, bit for bit the same result, and both layers are left as their two forwards leave them.
        The networks in ``fastconv.models`` call it for every Convolution directly followed by a Relu."""
        out = ops.conv_forward(x, self.W, self.b, self.stride, self.pad, relu=True, **self._geometry())
        self.x = x
        relu.out = out
        return out

    def backward(self, dout):
        dx, self.dW, db = ops.conv_backward(self.x, self.W, dout, self.stride, self.pad, **self._geometry())
        self.db = None if self.b is None else db
        return dx

    def backward_params(self, dout):
        """``backward(dout)`` without the input gradient: sets ``dW`` and ``db`` (the same bits) and returns
        None. The networks in ``fastconv.models`` call it for a Convolution that is their first layer, whose
        input gradient nothing reads."""
        _, self.dW, db = ops.conv_backward(self.x, self.W, dout, self.stride, self.pad, need_dx=False,
                                           **self._geometry())
        self.db = None if self.b is None else db

    # the fast paths a network asks its layers for (fastconv.models.Net): a layer that has one returns a
    # callable, anything else None. Subclasses get None: their forward or backward may not be this one.

    def fused_forward(self, next_layer):
        """A callable ``x -> next_layer.forward(self.forward(x))`` that runs both layers in one pass
        (:meth:`forward_relu` when ``next_layer`` is a :class:`Relu`), or None when the pair has none."""
        if type(self) is Convolution and type(next_layer) is Relu:
            return lambda x: self.forward_relu(x, next_layer)
        return None

    def first_layer_backward(self):
        """A callable ``dout -> None`` for this layer as a network's first, whose input gradient nothing reads
        (:meth:`backward_params`: the same ``dW`` and ``db``), or None when it has none."""
        return self.backward_params if type(self) is Convolution else None


class Deconvolution:
    """Transposed convolution with W (C_in, C_out, FH, FW) and bias b (C_out,) or None, as
    ``torch.nn.functional.conv_transpose2d``: the input gradient of the convolution with the same stride and
    padding (its backward-data kernel), so an (H, W) input gives ((H - 1)*sh + FH - pt - pb + oph, ...).

    ``stride`` an int or (sh, sw); ``pad`` an int, (ph, pw), (top, bottom, left, right) or "same" (Keras'
    Conv2DTranspose: output H*sh x W*sw) or "valid" (Keras: H*sh + max(FH - sh, 0)); ``output_padding`` an int
    or (oph, opw), each smaller than the stride (rows / columns added at the bottom / right).
    """

    def __init__(self, W, b=None, stride=1, pad=0, output_padding=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.output_padding = output_padding
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        out = ops.deconv_forward(x, self.W, self.b, self.stride, self.pad, self.output_padding)
        self.x = x
        return out

    def backward(self, dout):
        dx, self.dW, db = ops.deconv_backward(self.x, self.W, dout, self.stride, self.pad, self.output_padding)
        self.db = None if self.b is None else db
        return dx


class ZeroPadding:
    """Zeros around every (H, W) plane of an (N, C, H, W) batch: ``pad`` an int, (ph, pw), (top, bottom, left,
    right) or ((top, bottom), (left, right))."""

    def __init__(self, pad):
        self.pad = pad

    def forward(self, x):
        return ops.zeropad(x, self.pad)

    def backward(self, dout):
        return ops.crop(dout, self.pad)


class Cropping:
    """Rows and columns removed at the borders of every (H, W) plane: ``crop`` an int, (ch, cw), (top, bottom,
    left, right) or ((top, bottom), (left, right))."""

    def __init__(self, crop):
        self.crop = crop

    def forward(self, x):
        return ops.crop(x, self.crop)

    def backward(self, dout):
        return ops.zeropad(dout, self.crop)


class Pooling:
    """Max pooling over pool_h x pool_w windows; the output size accounts for ``pad`` (padding never wins).

    ``stride`` an int or (sh, sw); ``pad`` an int, (ph, pw), (top, bottom, left, right), "valid" or "same"
    (TensorFlow's rule), every side's padding smaller than the window.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    # The networks pass train_flg to this layer (models/_base.forward_layer): inference keeps no argmax.
    takes_train_flg = True

    def forward(self, x, train_flg=True):
        """``train_flg=False`` (inference, the networks' ``predict``) keeps no argmax, so ``backward``
        needs another forward first; the book's ``forward(x)`` keeps it."""
        out, self.arg_max = ops.maxpool_forward(x, self.pool_h, self.pool_w, self.stride, self.pad,
                                                keep_argmax=bool(train_flg))
        self.x = x
        return out

    def backward(self, dout):
        if self.arg_max is None:
            raise RuntimeError("Pooling.backward: the last forward ran with train_flg=False, which keeps no "
                               "argmax; call forward(x) (train_flg=True) first")
        return ops.maxpool_backward(dout, self.arg_max, np.shape(self.x), self.pool_h, self.pool_w, self.stride,
                                    self.pad)


class AvgPooling:
    """Average pooling (the d2l LeNet's); padded positions count as zeros, also with ``pad="same"`` (where
    TensorFlow divides by the real positions only). ``stride`` and ``pad`` as for :class:`Pooling`."""

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x_shape = None

    def forward(self, x):
        out = ops.avgpool_forward(x, self.pool_h, self.pool_w, self.stride, self.pad)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout):
        return ops.avgpool_backward(dout, self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)


# ======================================================================================================
# layers of issue 16 (elementwise and normalisation half): the convolutional networks' activations, spatial
# batch norm, global pooling, upsampling, two-input layers and elementwise losses

__all__ += [
    "LeakyRelu",
    "Tanh",
    "SpatialBatchNormalization",
    "GlobalAvgPooling",
    "GlobalMaxPooling",
    "Upsampling",
    "Add",
    "Concat",
    "SigmoidWithLoss",
    "MeanSquaredError",
]


class LeakyRelu:
    """Leaky ReLU: ``x`` where x > 0, ``alpha * x`` elsewhere (Keras' ``LeakyReLU(negative_slope)``);
    ``alpha`` >= 0."""

    def __init__(self, alpha=0.2):
        self.alpha = alpha
        self.out = None

    def forward(self, x):
        self.out = ops.leaky_relu_forward(x, self.alpha)
        return self.out

    def backward(self, dout):
        return ops.leaky_relu_backward(dout, self.out, self.alpha)


class Tanh(_Elementwise):
    """Hyperbolic tangent; remembers its output for the backward pass."""

    _forward, _backward = staticmethod(ops.tanh_forward), staticmethod(ops.tanh_backward)


class SpatialBatchNormalization:
    """Batch normalization of x (N, C, H, W) with one mean and variance per channel, taken over (N, H, W)
    (torch's ``BatchNorm2d``, Keras' ``BatchNormalization`` on images); the book's :class:`BatchNormalization`
    normalises each of the C*H*W features instead.

    Training mode (``forward(x, train_flg=True)``) uses the batch statistics and updates the running ones as
    the book does: ``running = momentum * running + (1 - momentum) * batch``, the biased batch variance
    included (torch keeps the unbiased one and counts its momentum the other way round). Inference uses the
    running statistics, which start as zeros of the input dtype when None (as the book's). ``gamma`` and
    ``beta`` hold C values in any shape; ``dgamma`` and ``dbeta`` take their shapes.

    Parameters
    ----------
    gamma, beta : ndarray, C elements
    momentum : float, optional
        Weight of the old value in the running averages.
    eps : float, optional
        Added to the variance before the square root (> 0).
    running_mean, running_var : ndarray (C,), optional
    """

    def __init__(self, gamma, beta, momentum=0.9, eps=1e-5, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var
        self.x = None
        self.mean = None
        self.invstd = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        x = ops.as_array(x, "x")
        if x.ndim == 4 and (x.dtype.kind == "f" or is_half(x.dtype)):
            c, dtype = x.shape[1], x.dtype
            if self.running_mean is None:
                self.running_mean = np.zeros(c, dtype=dtype)
            if self.running_var is None:
                self.running_var = np.zeros(c, dtype=dtype)
        if train_flg:
            out, self.mean, self.invstd = ops.spatial_batchnorm_forward_train(
                x, self.gamma, self.beta, self.running_mean, self.running_var, self.momentum, self.eps
            )
            self.x = x
            return out
        return ops.spatial_batchnorm_forward_infer(x, self.gamma, self.beta, self.running_mean,
                                                   self.running_var, self.eps)

    def backward(self, dout):
        if self.x is None:
            raise ValueError("dout: backward needs a training-mode forward first "
                             "(forward(x, train_flg=True))")
        dx, dgamma, dbeta = ops.spatial_batchnorm_backward(dout, self.x, self.mean, self.invstd, self.gamma)
        self.dgamma = dgamma.reshape(np.shape(self.gamma))
        self.dbeta = dbeta.reshape(np.shape(self.beta))
        return dx


class GlobalAvgPooling:
    """Mean over each (H, W) plane: (N, C, H, W) -> (N, C) (Keras' ``GlobalAveragePooling2D``)."""

    def __init__(self):
        self.x_shape = None

    def forward(self, x):
        out = ops.global_avgpool_forward(x)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout):
        return ops.global_avgpool_backward(dout, self.x_shape)


class GlobalMaxPooling:
    """Max over each (H, W) plane: (N, C, H, W) -> (N, C); the gradient goes to the first maximum."""

    def __init__(self):
        self.x_shape = None
        self.arg_max = None

    def forward(self, x):
        out, self.arg_max = ops.global_maxpool_forward(x)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout):
        return ops.global_maxpool_backward(dout, self.arg_max, self.x_shape)


class Upsampling:
    """Upsampling of (N, C, H, W) by integer factors (Keras' ``UpSampling2D``): ``scale`` an int or (scale_h,
    scale_w); ``mode`` "nearest" (repeat each pixel) or "bilinear" (torch's ``align_corners=False``)."""

    def __init__(self, scale=2, mode="nearest"):
        self.scale = scale
        self.mode = mode
        self.x_shape = None

    def forward(self, x):
        out = ops.upsample_forward(x, self.scale, self.mode)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout):
        return ops.upsample_backward(dout, self.x_shape, self.scale, self.mode)


class Add:
    """Sum of two inputs of one shape (a residual connection): ``forward(a, b)``; ``backward(dout)`` returns
    ``(da, db)``, both ``dout`` (one copy each, in the dtypes of a and b)."""

    def __init__(self):
        self.dtypes = None

    def forward(self, a, b):
        out = ops.add_forward(a, b)
        self.dtypes = (ops.as_array(a, "a").dtype, ops.as_array(b, "b").dtype)
        return out

    def backward(self, dout):
        dout = ops.as_array(dout, "dout")
        da_dtype, db_dtype = self.dtypes
        return dout.astype(da_dtype, copy=True), dout.astype(db_dtype, copy=True)


class Concat:
    """Concatenation of two or more inputs along ``axis`` (channels by default, as Inception's branches are
    joined): ``forward(a, b, ...)``; ``backward(dout)`` splits dout into ``(da, db, ...)``."""

    def __init__(self, axis=1):
        self.axis = axis
        self.lengths = None

    def forward(self, *xs):
        out = ops.concat_forward(xs, self.axis)
        ax = self.axis % out.ndim
        self.lengths = [x.shape[ax] for x in xs]
        return out

    def backward(self, dout):
        return ops.concat_backward(dout, self.lengths, self.axis)


class SigmoidWithLoss(_LossLayer):
    """Sigmoid followed by the binary cross-entropy, on logits (numerically stable for any x), against
    targets ``t`` of x's shape (0/1 labels or probabilities), averaged over all elements as Keras'
    ``BinaryCrossentropy(from_logits=True)`` and torch's ``BCEWithLogitsLoss`` (for the usual (N, 1) output
    of a discriminator this is the mean over the batch, as SoftmaxWithLoss). ``y`` is ``sigmoid(x)``."""

    def forward(self, x, t):
        self.t = t
        self.loss, self.y = ops.sigmoid_cross_entropy(x, t)
        return self.loss

    def _backward(self, dout):
        return ops.sigmoid_cross_entropy_backward(self.y, self.t, dout)


class MeanSquaredError(_LossLayer):
    """Mean squared error ``mean((y - t)**2)`` over all elements of y (Keras' ``mse``, torch's ``MSELoss``).

    This is not the book's ``mean_squared_error`` (``0.5 * sum((y - t)**2)``, no division at all, kept as is
    in :mod:`fastconv.functions`): a mean over all elements keeps the loss and its gradient independent of the
    batch size and of the output size, so learning rates carry over between them, and it is the loss the Keras
    networks this layer serves are trained with. ``backward`` returns ``2 * (y - t) / y.size * dout``.
    """

    def forward(self, x, t):
        self.y, self.t = x, t
        self.loss = ops.mean_squared_error(x, t)
        return self.loss

    def _backward(self, dout):
        return ops.mean_squared_error_backward(self.y, self.t, dout)
