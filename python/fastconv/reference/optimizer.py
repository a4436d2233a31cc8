"""Reference optimizers (book: ``common/optimizer.py``).

``update(params, grads)`` changes the arrays of ``params`` in place, for every
key of ``params``; state arrays (velocities, accumulators) are created lazily as
``zeros_like`` of the parameter, so they share its dtype. Scalars are kept as
Python floats so that float32 parameters are updated in float32.
"""
import math

import numpy as np

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

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


# ============================================================================
# plain and momentum methods
# ============================================================================

class SGD:
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    """

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    """Momentum SGD: ``v = momentum*v - lr*g; p += v``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        self.v = _zeros_like_all(params, self.v)
        for key in params.keys():
            v = self.v[key]
            v *= self.momentum
            v -= self.lr * grads[key]
            params[key] += v


class Nesterov:
    """Nesterov accelerated gradient in the book's reformulated form.

    ``v = momentum*v - lr*g; p += momentum**2 * v - (1 + momentum)*lr*g``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    momentum : float, optional
        Velocity decay.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        self.v = _zeros_like_all(params, self.v)
        for key in params.keys():
            v = self.v[key]
            g = grads[key]
            v *= self.momentum
            v -= self.lr * g
            params[key] += self.momentum * self.momentum * v
            params[key] -= (1 + self.momentum) * self.lr * g


# ============================================================================
# adaptive methods
# ============================================================================

class AdaGrad:
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    """

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        self.h = _zeros_like_all(params, self.h)
        for key in params.keys():
            g = grads[key]
            h = self.h[key]
            h += g * g
            params[key] -= self.lr * g / (np.sqrt(h) + _EPS)


class RMSprop:
    """RMSprop: ``h = decay_rate*h + (1 - decay_rate)*g*g; p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, optional
        Learning rate.
    decay_rate : float, optional
        Decay of the squared-gradient average.
    """

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        self.h = _zeros_like_all(params, self.h)
        for key in params.keys():
            g = grads[key]
            h = self.h[key]
            h *= self.decay_rate
            h += (1 - self.decay_rate) * g * g
            params[key] -= self.lr * g / (np.sqrt(h) + _EPS)


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
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        """Update every array of ``params`` in place.

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
        self.m = _zeros_like_all(params, self.m)
        self.v = _zeros_like_all(params, self.v)
        self.iter += 1
        # math.sqrt keeps lr_t a Python float: a NumPy float64 scalar would
        # promote float32 parameters' intermediates to float64.
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params.keys():
            g = grads[key]
            m = self.m[key]
            v = self.v[key]
            m += (1 - self.beta1) * (g - m)
            v += (1 - self.beta2) * (g ** 2 - v)
            params[key] -= lr_t * m / (np.sqrt(v) + _EPS)
