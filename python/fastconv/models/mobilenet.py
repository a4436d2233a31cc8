"""MobileNet (v1, Howard et al. 2017) for 28x28 images: depthwise-separable blocks.

conv 3x3 32 - BN - ReLU, then depthwise-separable blocks (depthwise 3x3 conv, one filter per channel - BN - ReLU -
pointwise 1x1 conv - BN - ReLU) of (channels, stride) (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 1)
(28 -> 14 -> 7), global average pooling, Dropout, Affine 512 -> 10, SoftmaxWithLoss. ``width`` scales every channel
count (the paper's width multiplier alpha).
"""

from __future__ import annotations

import numpy as np

from .graph import Chain, GraphNet

__all__ = ["MobileNet"]

_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 1))


class MobileNet(GraphNet):
    """MobileNet v1 for small images: see the module docstring.

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    width : float, optional
        Width multiplier of every layer's channels.
    dropout : float, optional
        Dropout ratio before the classifier.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, width=1.0, dropout=0.2, dtype=np.float32,
                 layers=None):
        self._start(dtype, layers)
        L = self.L
        c = max(8, int(32 * width))
        items = self.conv_bn_relu(input_dim[0], c, 3)
        for channels, stride in _BLOCKS:
            out = max(8, int(channels * width))
            items += self.conv_bn_relu(c, c, 3, stride, groups=c)  # depthwise
            items += self.conv_bn_relu(c, out, 1)  # pointwise
            c = out
        items += [L.GlobalAvgPooling(), L.Dropout(dropout),
                  self.affine(c, output_size, std=np.sqrt(1.0 / c))]
        self.body = Chain(items)
        self.last_layer = L.SoftmaxWithLoss()
