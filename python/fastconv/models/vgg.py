"""VGG for 28x28 images, as the book's ch08 describes VGG (Simonyan & Zisserman 2015): blocks of 3x3 'same'
convolutions with ReLU, each block ending in 2x2 max pooling, then fully connected layers with dropout.

Blocks of (32, 32), (64, 64) and (128, 128, 128) channels (28 -> 14 -> 7 -> 3), each convolution followed by
batch norm (``batch_norm=False`` leaves it out, as the original VGG), then Affine 1152 -> 256 - ReLU -
Dropout 0.5 (``dropout``) - Affine 256 -> 10 - SoftmaxWithLoss.
"""

from __future__ import annotations

import numpy as np

from .graph import Chain, GraphNet, pool_size

__all__ = ["VGG"]


class VGG(GraphNet):
    """A small VGG: see the module docstring.

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    blocks : tuple of tuple of int, optional
        Channels of each convolution, block by block.
    hidden_size : int, optional
        Width of the hidden fully connected layer.
    batch_norm : bool, optional
        Batch norm after each convolution (convolutions then have no bias).
    dropout : float, optional
        Dropout ratio after the hidden fully connected layer.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, blocks=((32, 32), (64, 64), (128, 128, 128)),
                 hidden_size=256, batch_norm=True, dropout=0.5, dtype=np.float32, layers=None):
        self._start(dtype, layers)
        L = self.L
        c, h, w = input_dim
        items = []
        for block in blocks:
            for width in block:
                if batch_norm:
                    items += self.conv_bn_relu(c, width, 3)
                else:
                    items += [self.conv(c, width, 3, bias=True), L.Relu()]
                c = width
            items.append(L.Pooling(2, 2, stride=2))
            h, w = pool_size(h, 2, 2), pool_size(w, 2, 2)
        items += [self.affine(c * h * w, hidden_size), L.Relu(), L.Dropout(dropout),
                  self.affine(hidden_size, output_size, std=np.sqrt(1.0 / hidden_size))]
        self.body = Chain(items)
        self.last_layer = L.SoftmaxWithLoss()
