"""The book's optimizers (``common/optimizer.py``) on fused C++ kernels, plus Adadelta and weight decay.

``update(params, grads)`` changes every array of ``params`` in place with one kernel per parameter (a single
pass over the parameter, its gradient and its state; OpenMP-parallel for large arrays, bit-identical for any
thread count). The results equal ``fastconv.reference.optimizer``'s bit for bit in float32 and float64: the
kernels repeat its operations in its order and round its scalars as NumPy does.

As in the book, the state lives in plain attributes, dicts keyed like ``params`` that are created on the first
update (``Momentum.v``, ``AdaGrad.h``, ``Adam.m``, ``Adam.v``, ``Adam.iter``, ``Adadelta.h``, ``Adadelta.d``),
and the hyperparameters are attributes too: ``optimizer.lr = ...`` between updates changes the step (the
Trainer's schedules do this). ``state_dict()`` / ``load_state_dict(d)`` save and restore all of it.

Every optimizer takes ``weight_decay=0.0``: the gradient used is then ``g + weight_decay * p`` (L2).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import _checks, _optim
from ._helpers import adam_lr_t

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "Adadelta"]

# The book's constant in AdaGrad, RMSprop and Adam.
_EPS = 1e-7


# ======================================================================================================
# shared machinery


class _Optimizer:
    """Base: hyperparameters are attributes named in ``_HYPER``, state dicts attributes named in ``_STATE``."""

    _METHOD = ""
    _HYPER: tuple = ()
    _STATE: tuple = ()

    def _check_hyper(self) -> dict:
        return _optim.optimizer_hyperparameters(**{n: getattr(self, n) for n in self._HYPER})

    def _scalars(self, hyper: dict) -> dict:
        return hyper

    def update(self, params, grads):
        """Update every array of ``params`` in place.

        Parameters
        ----------
        params : dict of str to ndarray
            Parameters (writeable float arrays), changed in place.
        grads : dict of str to ndarray
            Gradients, with the keys of ``params``, each of its parameter's shape.

        Returns
        -------
        None
        """
        scalars = self._scalars(self._check_hyper())
        state = {n: {} if getattr(self, n) is None else getattr(self, n) for n in self._STATE}
        _optim.optimizer_update(self._METHOD, params, grads, state, **scalars)
        for n in self._STATE:  # created on the first update, as in the book
            setattr(self, n, state[n])

    def state_dict(self) -> dict:
        """A snapshot of the hyperparameters and state: plain floats, ints, and dicts of array copies.

        Returns
        -------
        dict
            ``{'type': class name, <hyperparameter>: float, ..., <state>: None or {key: ndarray}}``
            (Adam adds ``'iter'``).
        """
        d = {"type": type(self).__name__}
        for n in self._HYPER:
            d[n] = float(getattr(self, n))
        for n in self._STATE:
            s = getattr(self, n)
            d[n] = None if s is None else {k: np.array(a, copy=True) for k, a in s.items()}
        return d

    def load_state_dict(self, d) -> None:
        """Restore what :meth:`state_dict` returned; later updates continue exactly as the saved optimizer's.

        Parameters
        ----------
        d : dict
            From ``state_dict()`` of the same optimizer class. Arrays are copied.

        Returns
        -------
        None
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(d).__name__}")
        name = type(self).__name__
        if d.get("type") != name:
            raise ValueError(f"state_dict: saved from {d.get('type')!r}, cannot load into {name}")
        missing = [k for k in (*self._HYPER, *self._STATE, *self._extra_keys()) if k not in d]
        if missing:
            raise ValueError(f"state_dict: missing entries {missing}")
        hyper = _optim.optimizer_hyperparameters(**{n: d[n] for n in self._HYPER})
        states = {}
        for n in self._STATE:
            s = d[n]
            if s is None:
                states[n] = None
                continue
            if not isinstance(s, Mapping):
                raise TypeError(f"state_dict[{n!r}]: expected None or a dict of arrays, got {type(s).__name__}")
            states[n] = {}
            for k, a in s.items():
                a = _checks.array(a, f"state_dict[{n!r}][{k!r}]")
                if a.dtype.kind != "f" and not _checks.is_half(a.dtype):
                    raise TypeError(f"state_dict[{n!r}][{k!r}]: dtype {a.dtype}, expected a floating dtype")
                states[n][k] = np.array(a, copy=True, order="C")
        self._load_extra(d)
        for n, v in hyper.items():
            setattr(self, n, v)
        for n, v in states.items():
            setattr(self, n, v)

    def _extra_keys(self) -> tuple:
        return ()

    def _load_extra(self, d) -> None:
        pass

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._HYPER)
        return f"{type(self).__name__}({args})"


# ======================================================================================================
# plain and momentum methods


class SGD(_Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "sgd"
    _HYPER = ("lr", "weight_decay")

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self._check_hyper()


class Momentum(_Optimizer):
    """Momentum SGD: ``v = momentum*v - lr*g; p += v``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay, in [0, 1].
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "momentum"
    _HYPER = ("lr", "momentum", "weight_decay")
    _STATE = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self._check_hyper()
        self.v = None


class Nesterov(_Optimizer):
    """Nesterov accelerated gradient in the book's reformulated form.

    ``v = momentum*v - lr*g; p += momentum**2 * v - (1 + momentum)*lr*g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay, in [0, 1].
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "nesterov"
    _HYPER = ("lr", "momentum", "weight_decay")
    _STATE = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self._check_hyper()
        self.v = None


# ======================================================================================================
# adaptive methods


class AdaGrad(_Optimizer):
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "adagrad"
    _HYPER = ("lr", "weight_decay")
    _STATE = ("h",)

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self._check_hyper()
        self.h = None

    def _scalars(self, hyper):
        return {**hyper, "eps": _EPS}


class RMSprop(_Optimizer):
    """RMSprop: ``h = decay_rate*h + (1 - decay_rate)*g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    decay_rate : float, optional
        Decay of the squared-gradient average, in [0, 1].
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "rmsprop"
    _HYPER = ("lr", "decay_rate", "weight_decay")
    _STATE = ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99, weight_decay=0.0):
        self.lr = lr
        self.decay_rate = decay_rate
        self.weight_decay = weight_decay
        self._check_hyper()
        self.h = None

    def _scalars(self, hyper):
        return {**hyper, "eps": _EPS}


class Adam(_Optimizer):
    """Adam with the bias correction folded into the step size (the book's form).

    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` at update ``t = iter``;
    ``m += (1-beta1)*(g - m); v += (1-beta2)*(g**2 - v); p -= lr_t * m / (sqrt(v) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    beta1 : float, optional
        Decay of the first-moment average, in [0, 1).
    beta2 : float, optional
        Decay of the second-moment average, in [0, 1).
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p`` (L2, not AdamW's decoupled decay).
    """

    _METHOD = "adam"
    _HYPER = ("lr", "beta1", "beta2", "weight_decay")
    _STATE = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.0):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.weight_decay = weight_decay
        self._check_hyper()
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        h = self._check_hyper()
        t = self.iter + 1  # counted only once the update has gone through
        lr_t = adam_lr_t(h["lr"], h["beta1"], h["beta2"], t)
        state = {n: {} if getattr(self, n) is None else getattr(self, n) for n in self._STATE}
        _optim.optimizer_update("adam", params, grads, state, lr_t=lr_t, beta1=h["beta1"], beta2=h["beta2"],
                             eps=_EPS, weight_decay=h["weight_decay"])
        self.m, self.v = state["m"], state["v"]
        self.iter = t

    update.__doc__ = _Optimizer.update.__doc__

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["iter"] = int(self.iter)
        return d

    state_dict.__doc__ = _Optimizer.state_dict.__doc__

    def _extra_keys(self):
        return ("iter",)

    def _load_extra(self, d):
        it = d["iter"]
        if isinstance(it, (bool, np.bool_)) or not isinstance(it, (int, np.integer)) or it < 0:
            raise ValueError(f"state_dict['iter']: expected an int >= 0, got {it!r}")
        self.iter = int(it)


class Adadelta(_Optimizer):
    """Adadelta (Zeiler 2012): steps from running averages of squared gradients and squared steps.

    ``h = rho*h + (1-rho)*g*g; dx = sqrt(d + eps) / sqrt(h + eps) * g; d = rho*d + (1-rho)*dx*dx; p -= lr*dx``.
    State: ``h`` (running mean of ``g**2``) and ``d`` (running mean of ``dx**2``).

    Parameters
    ----------
    lr : float, optional
        Scale of the step (1.0 is the paper's method).
    rho : float, optional
        Decay of both running averages, in [0, 1].
    eps : float, optional
        Added inside both square roots (> 0).
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    _METHOD = "adadelta"
    _HYPER = ("lr", "rho", "eps", "weight_decay")
    _STATE = ("h", "d")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.0):
        self.lr = lr
        self.rho = rho
        self.eps = eps
        self.weight_decay = weight_decay
        self._check_hyper()
        self.h = None
        self.d = None
