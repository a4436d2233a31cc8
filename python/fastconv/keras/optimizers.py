"""Keras 3 optimizers (names, arguments, defaults) on fastconv's fused update kernels (ops.optimizer_update).

Each step updates every trainable weight in place with one kernel call per dtype. The formulas are Keras':

- ``SGD(learning_rate=0.01, momentum=0.0)``: ``w -= lr*g``; with momentum ``v = momentum*v - lr*g; w += v``.
- ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``: the bias correction folded into
  the step, ``lr_t = lr*sqrt(1 - beta_2**t)/(1 - beta_1**t)``, ``w -= lr_t*m/(sqrt(v) + epsilon)``.
- ``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)``: Keras' formula exactly.
- ``SGD(nesterov=True)``: Keras' form ``v = momentum*v - lr*g; w += momentum*v - lr*g`` (not the book's).
- ``RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-7)`` and ``Adagrad(learning_rate=0.001,
  initial_accumulator_value=0.1, epsilon=1e-7)``: Keras' forms, epsilon inside the square root,
  ``w -= lr*g/sqrt(h + eps)`` (the book's optimizers add it outside).
Each runs a fused kernel in Keras' order of operations (``keras_*`` in fastconv.ops.optimizer_update).

Keras arguments that need work no kernel does (``weight_decay`` (decoupled), ``clipnorm``, ``clipvalue``,
``global_clipnorm``, ``use_ema``, ``amsgrad``, RMSprop's ``momentum`` and ``centered``) raise
``NotImplementedError`` when given a value other than their default. ``learning_rate`` may be a float or a
callable of the step (a schedule); it is read at every step, so callbacks can change it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from .._helpers import adam_lr_t

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "Optimizer", "RMSprop", "get"]


class Optimizer:
    """Base: ``learning_rate``, ``iterations``, per-weight state arrays, config."""

    _METHOD = ""
    _STATE: tuple = ()
    _HYPER: tuple = ()

    def __init__(
        self,
        learning_rate,
        name,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        for arg, value in (
            ("weight_decay", weight_decay),
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
            ("use_ema", use_ema or None),
            ("ema_overwrite_frequency", ema_overwrite_frequency),
            ("loss_scale_factor", loss_scale_factor),
            ("gradient_accumulation_steps", gradient_accumulation_steps),
        ):
            if value is not None:
                raise NotImplementedError(
                    f"{type(self).__name__}: `{arg}={value!r}` is not supported by "
                    "fastconv.keras (no kernel for it)"
                )
        self.name = name
        self.learning_rate = learning_rate
        self.iterations = 0
        self._state = {s: {} for s in self._STATE}

    # ---- learning rate

    @property
    def learning_rate(self):
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(
                    f"Argument `learning_rate` should be float, or an instance of LearningRateSchedule,"
                    f" or a callable (that takes in the current iteration value and returns the "
                    f"corresponding learning rate value). Received instead: learning_rate={value}"
                )
            value = float(value)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Argument `learning_rate` must be a finite value >= 0. Received: {value}")
        self._learning_rate = value

    # ---- update

    def _hyper(self, lr: float) -> dict:
        raise NotImplementedError

    def _init_state(self, name: str, p: np.ndarray):
        return None  # created as zeros by ops.optimizer_update

    def apply(self, params: dict, grads: dict) -> None:
        """One step on ``params`` (dict of name -> writeable array) with ``grads`` (same keys), in place."""
        lr = self.learning_rate
        for s in self._STATE:
            d = self._state[s]
            for k, p in params.items():
                if k not in d:
                    init = self._init_state(s, p)
                    if init is not None:
                        d[k] = init
        ops.optimizer_update(self._METHOD, params, grads, self._state, **self._hyper(lr))
        self.iterations += 1

    # ---- introspection, config

    @property
    def variables(self) -> list:
        """The optimizer's variables as Keras counts them: iterations, learning rate, the state arrays."""
        out = [np.array(self.iterations, dtype=np.int64), np.array(self.learning_rate, dtype=np.float32)]
        for s in self._STATE:
            out.extend(self._state[s].values())
        return out

    @property
    def built(self) -> bool:
        return self.iterations > 0 or any(self._state[s] for s in self._STATE)

    def get_config(self) -> dict:
        lr = self._learning_rate
        if callable(lr):
            raise ValueError("cannot serialize an optimizer whose learning_rate is a callable")
        return {"name": self.name, "learning_rate": lr, **{h: getattr(self, h) for h in self._HYPER}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _state_arrays(self) -> dict:
        """Flat dict of the state (for saving): ``'<state>/<weight key>'`` -> array, plus iterations."""
        out = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for s in self._STATE:
            for k, a in self._state[s].items():
                out[f"{s}/{k}"] = a
        return out

    def _load_state_arrays(self, arrays: dict) -> None:
        self.iterations = int(arrays.get("iterations", 0))
        for s in self._STATE:
            self._state[s] = {
                k[len(s) + 1 :]: np.array(a, order="C") for k, a in arrays.items() if k.startswith(s + "/")
            }

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, learning_rate={self.learning_rate}>"


class SGD(Optimizer):
    """``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._METHOD = ("keras_nesterov" if self.nesterov else "momentum") if self.momentum > 0 else "sgd"
        self._STATE = ("v",) if self.momentum > 0 else ()
        self._HYPER = ("momentum", "nesterov")
        super().__init__(learning_rate, name, **kwargs)

    def _hyper(self, lr):
        if self.momentum > 0:
            return {"lr": lr, "momentum": self.momentum, "weight_decay": 0.0}
        return {"lr": lr, "weight_decay": 0.0}


class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``."""

    _METHOD = "adam"
    _STATE = ("m", "v")
    _HYPER = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        name="adam",
        **kwargs,
    ):
        if amsgrad:
            raise NotImplementedError("Adam(amsgrad=True) needs a kernel fastconv does not have yet")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = (
            float(beta_1),
            float(beta_2),
            float(epsilon),
            False,
        )
        ops.optimizer_hyperparameters(beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)
        super().__init__(learning_rate, name, **kwargs)

    def _hyper(self, lr):
        t = self.iterations + 1
        return {
            "lr_t": adam_lr_t(lr, self.beta_1, self.beta_2, t),
            "beta1": self.beta_1,
            "beta2": self.beta_2,
            "eps": self.epsilon,
            "weight_decay": 0.0,
        }


class RMSprop(Optimizer):
    """``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``."""

    _METHOD = "keras_rmsprop"
    _STATE = ("h",)
    _HYPER = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        name="rmsprop",
        **kwargs,
    ):
        if momentum:
            raise NotImplementedError(
                f"RMSprop(momentum={momentum}) needs a kernel fastconv does not have yet"
            )
        if centered:
            raise NotImplementedError("RMSprop(centered=True) needs a kernel fastconv does not have yet")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), 0.0, float(epsilon), False
        ops.optimizer_hyperparameters(rho=self.rho, eps=self.epsilon)
        super().__init__(learning_rate, name, **kwargs)

    def _hyper(self, lr):
        return {"lr": lr, "rho": self.rho, "eps": self.epsilon, "weight_decay": 0.0}


class Adagrad(Optimizer):
    """``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``."""

    _METHOD = "keras_adagrad"
    _STATE = ("h",)
    _HYPER = ("initial_accumulator_value", "epsilon")

    def __init__(
        self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="adagrad", **kwargs
    ):
        self.initial_accumulator_value = float(initial_accumulator_value)
        if self.initial_accumulator_value < 0:
            raise ValueError(f"initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        self.epsilon = float(epsilon)
        ops.optimizer_hyperparameters(eps=self.epsilon)
        super().__init__(learning_rate, name, **kwargs)

    def _init_state(self, name, p):
        return np.full(p.shape, self.initial_accumulator_value, dtype=p.dtype)

    def _hyper(self, lr):
        return {"lr": lr, "eps": self.epsilon, "weight_decay": 0.0}


class Adadelta(Optimizer):
    """``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)``."""

    _METHOD = "adadelta"
    _STATE = ("h", "d")
    _HYPER = ("rho", "epsilon")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        self.rho, self.epsilon = float(rho), float(epsilon)
        ops.optimizer_hyperparameters(rho=self.rho, eps=self.epsilon)
        super().__init__(learning_rate, name, **kwargs)

    def _hyper(self, lr):
        return {"lr": lr, "rho": self.rho, "eps": self.epsilon, "weight_decay": 0.0}


_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop, "Adagrad": Adagrad, "Adadelta": Adadelta}
_NAMES = {k.lower(): v for k, v in _CLASSES.items()}
_NOT_YET = ("adamw", "adamax", "nadam", "ftrl", "lion", "lamb", "loss_scale_optimizer", "muon")


def get(identifier):
    """An optimizer from a name (``'adam'``, ``'Adam'``), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is not None:
            return cls()
        if identifier.lower() in _NOT_YET:
            raise NotImplementedError(
                f"optimizer {identifier!r} needs a kernel fastconv does not have yet; "
                f"available: {', '.join(_CLASSES)}"
            )
    elif isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")


def serialize(opt: Optimizer) -> dict:
    return {"class_name": type(opt).__name__, "config": opt.get_config()}
