"""Keras 3 losses that fastconv computes with its fused softmax + cross-entropy kernel.

``categorical_crossentropy`` (one-hot targets) and ``sparse_categorical_crossentropy`` (integer labels) on a
model whose output is a softmax (``Dense(..., activation='softmax')``, ``Activation('softmax')``,
``Softmax()``): in training and evaluation the softmax is not run as a layer; the model's scores go to
``ops.softmax_cross_entropy``, whose gradient (softmax - target) / N is exact, as Keras' is where the
probabilities are not clipped. With ``from_logits=True`` the output is the scores themselves.
``binary_crossentropy`` on a sigmoid output runs the same kernel on the two-class scores (0, z): their softmax
is (1 - sigmoid(z), sigmoid(z)), so the loss and its gradient sigmoid(z) - t are the binary cross-entropy's.
The loss is the mean over samples (Keras' ``sum_over_batch_size``); probabilities are guarded by 1e-7 inside
the log, where Keras clips them to [1e-7, 1 - 1e-7].

``mean_squared_error`` (``mse``) runs ``ops.mean_squared_error`` on the model's output as it is (after its
activation, whatever it is): Keras' mean over the last axis, then over the batch, is the mean over all elements.
``mean_absolute_error``, ``huber``, ``kl_divergence``, ... need kernels fastconv does not have yet
(``NotImplementedError``).
"""

from __future__ import annotations

import numpy as np

from .. import ops

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "categorical_crossentropy",
    "get",
    "mean_squared_error",
    "sparse_categorical_crossentropy",
]

_NO_KERNEL = (
    "mean_absolute_error",
    "mae",
    "mean_absolute_percentage_error",
    "mape",
    "mean_squared_logarithmic_error",
    "msle",
    "huber",
    "log_cosh",
    "kl_divergence",
    "kld",
    "poisson",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "cosine_similarity",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "ctc",
    "dice",
    "tversky",
    "MeanAbsoluteError",
    "Huber",
    "KLDivergence",
    "Poisson",
    "Hinge",
    "CosineSimilarity",
)


class Loss:
    """Base of the losses: ``kind`` picks the fused kernel, ``activation`` the output it fuses with."""

    kind = ""
    activation = "softmax"

    def __init__(
        self, name=None, reduction="sum_over_batch_size", dtype=None, from_logits=False, label_smoothing=0.0
    ):
        if label_smoothing:
            raise NotImplementedError(
                f"{type(self).__name__}(label_smoothing={label_smoothing}) is not supported"
            )
        if reduction not in ("sum_over_batch_size", "auto", None):
            raise NotImplementedError(
                f"{type(self).__name__}: reduction={reduction!r} is not supported "
                "(fastconv's kernel returns the mean over the batch)"
            )
        self.name = name or self._default_name
        self.reduction = "sum_over_batch_size"
        self.from_logits = bool(from_logits)

    # ---- targets

    def _targets(self, y, scores):
        """``y`` in the form the kernel takes for outputs ``scores`` (rows, K), or Keras' ValueError."""
        raise NotImplementedError

    def _fused(self, scores, y, need_grad: bool):
        """(loss, probabilities, d loss / d scores or None) for scores (rows, K) and prepared targets."""
        loss, probs = ops.softmax_cross_entropy(scores, y)
        grad = ops.softmax_cross_entropy_backward(probs, y) if need_grad else None
        return loss, probs, grad

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of scores ``y_pred`` (``from_logits=True`` only: the kernel takes scores)."""
        if sample_weight is not None:
            raise NotImplementedError("sample_weight is not supported by fastconv.keras losses")
        if not self.from_logits:
            raise NotImplementedError(
                f"{type(self).__name__}(from_logits=False) called on probabilities needs a "
                "cross-entropy kernel on probabilities; fastconv fuses the loss with the "
                "model's softmax / sigmoid instead (or pass from_logits=True)"
            )
        scores = np.asarray(y_pred)
        scores = scores.reshape(-1, scores.shape[-1]) if scores.ndim > 1 else scores.reshape(-1, 1)
        return self._fused(*self._prepare(scores, y_true), False)[0]

    def _prepare(self, scores, y):
        return scores, self._targets(y, scores)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or probability) targets of the output's shape."""

    kind = "categorical"
    _default_name = "categorical_crossentropy"

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype, from_logits, label_smoothing)
        if axis != -1:
            raise NotImplementedError(f"CategoricalCrossentropy(axis={axis}): only axis=-1 is supported")

    def _targets(self, y, scores):
        y = np.asarray(y)
        k = scores.shape[-1]
        if y.ndim == 0 or y.shape[-1] != k or y.size != scores.size:
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape. Received: "
                f"target.shape={(None, *y.shape[1:])}, output.shape={(None, k)}"
            )
        if y.dtype != scores.dtype:
            y = y.astype(scores.dtype)
        return y.reshape(-1, k)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class labels (shape (N,) or (N, 1))."""

    kind = "sparse"
    _default_name = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype, from_logits)
        if ignore_class is not None:
            raise NotImplementedError(
                f"SparseCategoricalCrossentropy(ignore_class={ignore_class}) is not supported"
            )

    def _targets(self, y, scores):
        y = np.asarray(y)
        if y.ndim >= 1 and y.shape[-1] == 1 and y.size == scores.shape[0]:
            y = y.reshape(-1)
        if y.size != scores.shape[0]:
            raise ValueError(
                f"Arguments `target` and `output` must have the same rank (ndim) minus one: targets "
                f"are class indices. Received: target.shape={(None, *y.shape[1:])}, "
                f"output.shape={(None, scores.shape[-1])}"
            )
        y = y.reshape(-1)
        if y.dtype.kind == "f":
            if not np.array_equal(y, np.floor(y)):
                raise ValueError(
                    "sparse_categorical_crossentropy: targets must be integer class indices; got "
                    "non-integral floats"
                )
            y = y.astype(np.int64)
        return y


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of a sigmoid output (or of logits, ``from_logits=True``) against 0/1 targets."""

    kind = "binary"
    activation = "sigmoid"
    _default_name = "binary_crossentropy"

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype, from_logits, label_smoothing)

    def _targets(self, y, scores):
        y = np.asarray(y)
        if y.size != scores.size:
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape. Received: "
                f"target.shape={(None, *y.shape[1:])}, output.shape={(None, *scores.shape[1:])}"
            )
        return y.reshape(-1).astype(scores.dtype, copy=False)

    def _prepare(self, scores, y):
        return scores, self._targets(y, scores)

    def _fused(self, z, t, need_grad):
        # The two-class scores (0, z) and targets (1 - t, t): their softmax cross-entropy is the binary
        # cross-entropy of sigmoid(z), and its gradient on z is the second column's, sigmoid(z) - t.
        z = z.reshape(-1)
        z2 = np.zeros((z.size, 2), dtype=z.dtype)
        z2[:, 1] = z
        t2 = np.empty((z.size, 2), dtype=z.dtype)
        t2[:, 1] = t
        np.subtract(1, t, out=t2[:, 0])
        loss, probs = ops.softmax_cross_entropy(z2, t2)
        grad = ops.softmax_cross_entropy_backward(probs, t2)[:, 1].copy() if need_grad else None
        return loss, probs[:, 1].copy(), grad


class MeanSquaredError(Loss):
    """``MeanSquaredError()`` / ``'mse'``: mean((y_pred - y_true)**2) over all elements, on the model's output as
    its last layer computes it (no fused activation: the output's activation runs, and is differentiated, as a
    layer's)."""

    kind = "regression"
    activation = None
    _default_name = "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype, from_logits=True)

    def _targets(self, y, scores):
        y = np.asarray(y)
        if y.size != scores.size:
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape. Received: "
                f"target.shape={(None, *y.shape[1:])}, output.shape={(None, *scores.shape[1:])}"
            )
        return y.reshape(scores.shape).astype(scores.dtype, copy=False)

    def _fused(self, scores, y, need_grad):
        loss = ops.mean_squared_error(scores, y)
        grad = ops.mean_squared_error_backward(scores, y) if need_grad else None
        return loss, scores, grad

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


def mean_squared_error(y_true, y_pred):
    """Keras' function form: the mean of the squared differences."""
    return MeanSquaredError()(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras' function form; fastconv computes it from logits (see :class:`CategoricalCrossentropy`)."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Keras' function form; fastconv computes it from logits."""
    return SparseCategoricalCrossentropy(from_logits, ignore_class)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras' function form; fastconv computes it from logits."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis)(y_true, y_pred)


_CLASSES = {
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
    "BinaryCrossentropy": BinaryCrossentropy,
    "MeanSquaredError": MeanSquaredError,
}
_NAMES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
_FUNCS = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
}


def get(identifier):
    """A :class:`Loss` from a name (``'categorical_crossentropy'``, ``'CategoricalCrossentropy'``), one of
    this
    module's functions, a config dict or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is not None:
            return cls()
        if identifier in _NO_KERNEL:
            raise NotImplementedError(
                f"loss {identifier!r} needs a kernel fastconv does not have yet; available: "
                f"{', '.join(_NAMES)}"
            )
    elif isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    elif callable(identifier):
        if identifier in _FUNCS:
            return _FUNCS[identifier]()
        raise NotImplementedError(
            f"loss {identifier!r}: custom loss functions cannot run on fastconv's kernels; "
            f"available: {', '.join(_NAMES)}"
        )
    raise ValueError(f"Could not interpret loss identifier: {identifier}")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
