"""The book's optimizers (``common/optimizer.py``): ``update(params, grads)`` in place.

In this version they are the reference implementations (vectorised in-place NumPy updates, dtype of the
parameters preserved); fused C++ update kernels are planned.
"""

from __future__ import annotations

from .reference.optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
