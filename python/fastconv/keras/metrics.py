"""Keras 3 accuracy metrics: stateful means (``update_state``, ``result``, ``reset_state``).

``metrics=['accuracy']`` picks the variant from the loss, as Keras does: ``categorical_accuracy`` (one-hot
targets), ``sparse_categorical_accuracy`` (integer labels) or ``binary_accuracy`` (threshold 0.5). Comparing
argmaxes is all a metric computes (NumPy), as the book's ``accuracy`` methods do.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "Mean",
    "Metric",
    "SparseCategoricalAccuracy",
    "get",
]


class Metric:
    """A running mean of per-sample values."""

    def __init__(self, name=None, dtype=None):
        self.name = name or self._default_name
        self.reset_state()

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0.0

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        if sample_weight is not None:
            raise NotImplementedError("sample_weight is not supported by fastconv.keras metrics")
        v = self._values(np.asarray(y_true), np.asarray(y_pred))
        self._total += float(np.sum(v))
        self._count += v.size

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """Weighted mean of the values given to ``update_state(value, sample_weight=1)`` (the loss tracker)."""

    _default_name = "mean"

    def update_state(self, values, sample_weight=None) -> None:
        w = 1.0 if sample_weight is None else float(sample_weight)
        self._total += float(values) * w
        self._count += w


class CategoricalAccuracy(Metric):
    """argmax(y_true) == argmax(y_pred)."""

    _default_name = "categorical_accuracy"

    def _values(self, y_true, y_pred):
        return np.argmax(y_true.reshape(-1, y_true.shape[-1]), axis=-1) == np.argmax(
            y_pred.reshape(-1, y_pred.shape[-1]), axis=-1
        )


class SparseCategoricalAccuracy(Metric):
    """y_true == argmax(y_pred)."""

    _default_name = "sparse_categorical_accuracy"

    def _values(self, y_true, y_pred):
        return y_true.reshape(-1) == np.argmax(y_pred.reshape(-1, y_pred.shape[-1]), axis=-1)


class BinaryAccuracy(Metric):
    """(y_pred > threshold) == y_true."""

    _default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return (y_pred.reshape(-1) > self.threshold) == (y_true.reshape(-1) > 0.5)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class Accuracy(Metric):
    """y_true == y_pred (exact equality, Keras' ``Accuracy``)."""

    _default_name = "accuracy"

    def _values(self, y_true, y_pred):
        return y_true.reshape(-1) == y_pred.reshape(-1)


_BY_LOSS = {"categorical": CategoricalAccuracy, "sparse": SparseCategoricalAccuracy, "binary": BinaryAccuracy}
_NAMES = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "CategoricalAccuracy": CategoricalAccuracy,
    "SparseCategoricalAccuracy": SparseCategoricalAccuracy,
    "BinaryAccuracy": BinaryAccuracy,
}
_NOT_YET = (
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "auc",
    "AUC",
    "precision",
    "Precision",
    "recall",
    "Recall",
    "mse",
    "mae",
    "mean_squared_error",
    "mean_absolute_error",
    "f1_score",
)


def get(identifier, loss_kind: str = "categorical"):
    """A metric from a name or instance; ``'accuracy'`` / ``'acc'`` follow the loss (``loss_kind``)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return _BY_LOSS.get(loss_kind, CategoricalAccuracy)(name=identifier)
        if identifier in _NAMES:
            return _NAMES[identifier]()
        if identifier in _NOT_YET:
            raise NotImplementedError(
                f"metric {identifier!r} is not available in fastconv.keras yet; available: "
                "'accuracy', " + ", ".join(repr(n) for n in _NAMES if n[0].islower())
            )
    raise ValueError(f"Could not interpret metric identifier: {identifier}")
