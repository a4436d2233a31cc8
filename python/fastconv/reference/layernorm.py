"""Reference layer normalisation over the last axis (Ba, Kiros & Hinton, "Layer Normalization", 2016), in
plain NumPy: the definition Keras' LayerNormalization and torch.nn.LayerNorm compute (biased variance, eps
inside the
square root). Follows the input dtype."""

import numpy as np

__all__ = ["layernorm_backward", "layernorm_forward"]


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Returns (out, cache): out = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of x."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    return xhat * gamma + beta, (xhat, np.sqrt(var + eps), gamma)


def layernorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) from the gradient dout of the output."""
    xhat, std, gamma = cache
    axes = tuple(range(dout.ndim - 1))
    dgamma, dbeta = (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
    g = dout * gamma  # gradient of xhat
    # xhat = (x - mean) / std: the mean and std of the row depend on every element of it
    dx = (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)) / std
    return dx, dgamma, dbeta
