"""InceptionNet for 28x28 images: GoogLeNet-style Inception blocks (Szegedy et al. 2015, the book's ch08), each
convolution followed by batch norm and ReLU (as Inception v2).

An Inception block runs four branches on its input and joins them along the channels: 1x1 conv; 1x1 conv then 3x3;
1x1 conv then 5x5; 3x3 max pooling (stride 1, pad 1) then 1x1 conv. The network: conv 3x3 32 - BN - ReLU, blocks
3a and 3b, 3x3/2 max pooling (28 -> 14, pad 1), blocks 4a and 4b, 2x2 max pooling (14 -> 7), global average
pooling, Dropout 0.3 (``dropout``), Affine -> 10, SoftmaxWithLoss.
"""

from __future__ import annotations

import numpy as np

from .graph import Branches, Chain, GraphNet

__all__ = ["InceptionNet"]

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per block, GoogLeNet's table at about a quarter the width.
_BLOCKS = {
    "3a": (16, 24, 32, 4, 8, 8),
    "3b": (32, 32, 48, 8, 24, 16),
    "4a": (48, 24, 52, 4, 12, 16),
    "4b": (40, 28, 56, 6, 16, 16),
}


class InceptionNet(GraphNet):
    """A small GoogLeNet: see the module docstring.

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    width : float, optional
        Multiplier of every layer's channels (at least 2 each).
    dropout : float, optional
        Dropout ratio before the classifier.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, width=1.0, dropout=0.3, dtype=np.float32,
                 layers=None):
        self._start(dtype, layers)
        L = self.L

        def scale(v):
            return max(2, int(round(v * width)))

        c = scale(32)
        items = self.conv_bn_relu(input_dim[0], c, 3)
        for name in ("3a", "3b", "pool", "4a", "4b"):
            if name == "pool":
                items.append(L.Pooling(3, 3, stride=2, pad=1))
                continue
            widths = [scale(v) for v in _BLOCKS[name]]
            items.append(self._inception(c, *widths))
            c = sum(widths[i] for i in (0, 2, 4, 5))
        items += [L.Pooling(2, 2, stride=2), L.GlobalAvgPooling(), L.Dropout(dropout),
                  self.affine(c, output_size, std=np.sqrt(1.0 / c))]
        self.body = Chain(items)
        self.last_layer = L.SoftmaxWithLoss()

    def _inception(self, c, c1, r3, c3, r5, c5, cp):
        L = self.L
        return Branches(
            [
                Chain(self.conv_bn_relu(c, c1, 1)),
                Chain(self.conv_bn_relu(c, r3, 1) + self.conv_bn_relu(r3, c3, 3)),
                Chain(self.conv_bn_relu(c, r5, 1) + self.conv_bn_relu(r5, c5, 5)),
                Chain([L.Pooling(3, 3, stride=1, pad=1)] + self.conv_bn_relu(c, cp, 1)),
            ],
            L.Concat(axis=1),
        )
