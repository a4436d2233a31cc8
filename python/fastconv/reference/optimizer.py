"""Reference optimizers (book: ``common/optimizer.py``), plus Adadelta and L2 weight decay.

``update(params, grads)`` changes the arrays of ``params`` in place, for every
key of ``params``; state arrays (velocities, accumulators) are created lazily as
``zeros_like`` of the parameter, so they share its dtype. Scalars are kept as
Python floats so that float32 parameters are updated in float32.

Each class applies a per-array step function (``sgd_step``, ``momentum_step``,
..., ``adadelta_step``) to every key; the steps are plain NumPy, written in the
book's in-place form, and are the oracle of the fused kernels of
``fastconv.optimizer`` (which also use them for arrays the kernels cannot
update in place). With ``weight_decay != 0`` the gradient used is
``g + weight_decay * p`` (L2 regularisation), the parameter taken before the step.
"""
import numpy as np

# shared with fastconv.optimizer: the reference imports it, never the reverse
from .._helpers import adam_lr_t

__all__ = [
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "Adadelta",
    "sgd_step", "momentum_step", "nesterov_step", "adagrad_step", "rmsprop_step", "adam_step", "adadelta_step",
    "adam_lr_t",
]

# Keeps the adaptive step finite where the accumulated squared gradient is 0.
_EPS = 1e-7


def _zeros_like_all(params, state):
    """Return ``state`` with a zero array for every key of ``params`` it lacks."""
    if state is None:
        state = {}
    for key, val in params.items():
        if key not in state:
            state[key] = np.zeros_like(val)
    return state


def _decayed(p, g, weight_decay):
    """The gradient a step uses: ``g``, or ``g + weight_decay * p`` (a new array; ``g`` is not changed)."""
    if weight_decay:
        return g + weight_decay * p
    return g


# ============================================================================
# per-array steps (in place on p and the state arrays; scalars are Python floats)
# ============================================================================

def sgd_step(p, g, lr, weight_decay=0.0):
    """``p -= lr * g``."""
    g = _decayed(p, g, weight_decay)
    p -= lr * g


def momentum_step(p, g, v, lr, momentum, weight_decay=0.0):
    """``v = momentum*v - lr*g; p += v``."""
    g = _decayed(p, g, weight_decay)
    v *= momentum
    v -= lr * g
    p += v


def nesterov_step(p, g, v, lr, momentum, weight_decay=0.0):
    """The book's Nesterov: ``v = momentum*v - lr*g; p += momentum**2 * v - (1 + momentum)*lr*g``."""
    g = _decayed(p, g, weight_decay)
    v *= momentum
    v -= lr * g
    p += momentum * momentum * v
    p -= (1 + momentum) * lr * g


def adagrad_step(p, g, h, lr, eps=_EPS, weight_decay=0.0):
    """``h += g*g; p -= lr * g / (sqrt(h) + eps)``."""
    g = _decayed(p, g, weight_decay)
    h += g * g
    p -= lr * g / (np.sqrt(h) + eps)


def rmsprop_step(p, g, h, lr, decay_rate, eps=_EPS, weight_decay=0.0):
    """``h = decay_rate*h + (1 - decay_rate)*g*g; p -= lr * g / (sqrt(h) + eps)``."""
    g = _decayed(p, g, weight_decay)
    h *= decay_rate
    h += (1 - decay_rate) * g * g
    p -= lr * g / (np.sqrt(h) + eps)


def adam_step(p, g, m, v, lr_t, beta1, beta2, eps=_EPS, weight_decay=0.0):
    """Adam with the bias-corrected step size ``lr_t`` given:
    ``m += (1-beta1)*(g - m); v += (1-beta2)*(g**2 - v); p -= lr_t * m / (sqrt(v) + eps)``."""
    g = _decayed(p, g, weight_decay)
    m += (1 - beta1) * (g - m)
    v += (1 - beta2) * (g ** 2 - v)
    p -= lr_t * m / (np.sqrt(v) + eps)


def adadelta_step(p, g, h, d, lr, rho, eps, weight_decay=0.0):
    """Adadelta (Zeiler 2012, Algorithm 1) with a step scale ``lr``:
    ``h = rho*h + (1-rho)*g*g; dx = sqrt(d + eps) / sqrt(h + eps) * g; d = rho*d + (1-rho)*dx*dx; p -= lr*dx``."""
    g = _decayed(p, g, weight_decay)
    h *= rho
    h += (1 - rho) * g * g
    dx = np.sqrt(d + eps) / np.sqrt(h + eps) * g
    d *= rho
    d += (1 - rho) * dx * dx
    p -= lr * dx


# Keras 3's forms (keras.optimizers, its order of operations), where they differ from the book's: the definitions
# fastconv.keras.optimizers follows.

def keras_nesterov_step(p, g, v, lr, momentum, weight_decay=0.0):
    """Keras' ``SGD(momentum, nesterov=True)``: ``v = v*momentum - g*lr; p += v*momentum - g*lr``."""
    g = _decayed(p, g, weight_decay)
    v *= momentum
    v -= g * lr
    p += v * momentum - g * lr


def keras_adagrad_step(p, g, h, lr, eps=_EPS, weight_decay=0.0):
    """Keras' Adagrad: ``h += g*g; p -= lr * g / sqrt(h + eps)`` (epsilon inside the square root)."""
    g = _decayed(p, g, weight_decay)
    h += g * g
    p -= lr * g / np.sqrt(h + eps)


def keras_rmsprop_step(p, g, h, lr, rho, eps=_EPS, weight_decay=0.0):
    """Keras' RMSprop: ``h = rho*h + (1 - rho)*(g*g); p -= lr * g / sqrt(h + eps)`` (epsilon inside the root)."""
    g = _decayed(p, g, weight_decay)
    h *= rho
    h += (1 - rho) * (g * g)
    p -= lr * g / np.sqrt(h + eps)


_UPDATE_DOC = """Update every array of ``params`` in place.

        Parameters
        ----------
        params : dict of str to ndarray
            Parameters, changed in place.
        grads : dict of str to ndarray
            Gradients, with the keys of ``params``.

        Returns
        -------
        None
        """


# ============================================================================
# plain and momentum methods
# ============================================================================

class SGD:
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay

    def update(self, params, grads):
        for key in params.keys():
            sgd_step(params[key], grads[key], float(self.lr), float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


class Momentum:
    """Momentum SGD: ``v = momentum*v - lr*g; p += v``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.v = None

    def update(self, params, grads):
        self.v = _zeros_like_all(params, self.v)
        for key in params.keys():
            momentum_step(params[key], grads[key], self.v[key], float(self.lr), float(self.momentum),
                          float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


class Nesterov:
    """Nesterov accelerated gradient in the book's reformulated form.

    ``v = momentum*v - lr*g; p += momentum**2 * v - (1 + momentum)*lr*g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.v = None

    def update(self, params, grads):
        self.v = _zeros_like_all(params, self.v)
        for key in params.keys():
            nesterov_step(params[key], grads[key], self.v[key], float(self.lr), float(self.momentum),
                          float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


# ============================================================================
# adaptive methods
# ============================================================================

class AdaGrad:
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.h = None

    def update(self, params, grads):
        self.h = _zeros_like_all(params, self.h)
        for key in params.keys():
            adagrad_step(params[key], grads[key], self.h[key], float(self.lr), _EPS, float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


class RMSprop:
    """RMSprop: ``h = decay_rate*h + (1 - decay_rate)*g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    decay_rate : float, optional
        Decay of the squared-gradient average.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.01, decay_rate=0.99, weight_decay=0.0):
        self.lr = lr
        self.decay_rate = decay_rate
        self.weight_decay = weight_decay
        self.h = None

    def update(self, params, grads):
        self.h = _zeros_like_all(params, self.h)
        for key in params.keys():
            rmsprop_step(params[key], grads[key], self.h[key], float(self.lr), float(self.decay_rate), _EPS,
                         float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


class Adam:
    """Adam with the bias correction folded into the step size (the book's form).

    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``;
    ``m += (1-beta1)*(g - m); v += (1-beta2)*(g**2 - v); p -= lr_t * m / (sqrt(v) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    beta1 : float, optional
        Decay of the first-moment average.
    beta2 : float, optional
        Decay of the second-moment average.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.0):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.weight_decay = weight_decay
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        self.m = _zeros_like_all(params, self.m)
        self.v = _zeros_like_all(params, self.v)
        self.iter += 1
        b1, b2 = float(self.beta1), float(self.beta2)
        lr_t = adam_lr_t(float(self.lr), b1, b2, self.iter)
        for key in params.keys():
            adam_step(params[key], grads[key], self.m[key], self.v[key], lr_t, b1, b2, _EPS,
                      float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC


class Adadelta:
    """Adadelta (Zeiler 2012): per-element steps from running averages of squared gradients and squared steps.

    ``h = rho*h + (1-rho)*g*g; dx = sqrt(d + eps) / sqrt(h + eps) * g; d = rho*d + (1-rho)*dx*dx; p -= lr*dx``.
    State: ``h`` (running mean of ``g**2``) and ``d`` (running mean of ``dx**2``).

    Parameters
    ----------
    lr : float, optional
        Scale of the step (1.0 is the paper's method).
    rho : float, optional
        Decay of both running averages.
    eps : float, optional
        Added inside both square roots.
    weight_decay : float, optional
        L2 coefficient: the gradient used is ``g + weight_decay * p``.
    """

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.0):
        self.lr = lr
        self.rho = rho
        self.eps = eps
        self.weight_decay = weight_decay
        self.h = None
        self.d = None

    def update(self, params, grads):
        self.h = _zeros_like_all(params, self.h)
        self.d = _zeros_like_all(params, self.d)
        for key in params.keys():
            adadelta_step(params[key], grads[key], self.h[key], self.d[key], float(self.lr), float(self.rho),
                          float(self.eps), float(self.weight_decay))

    update.__doc__ = _UPDATE_DOC
