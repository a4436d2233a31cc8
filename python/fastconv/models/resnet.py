"""ResNet for 28x28 images: ResNet-20-style basic residual blocks (He et al. 2016, section 4.2), the residual block of
the book's ch08 and of the tutorials.

conv 3x3 16 - BN - ReLU, then three stages of ``n`` basic blocks with 16, 32 and 64 channels (the first block of
stages 2 and 3 has stride 2: 28 -> 14 -> 7), global average pooling, Affine 64 -> 10, SoftmaxWithLoss. A basic
block is ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``, the shortcut the identity or, where the block
changes the shape, a 1x1 convolution with stride 2 and batch norm (option B of the paper). Convolutions have no
bias (the batch norm's beta is one); ``n=3`` gives ResNet-20's 19 convolutions + 1 affine layer.
"""

from __future__ import annotations

import numpy as np

from .graph import Chain, GraphNet, Residual

__all__ = ["ResNet"]


class ResNet(GraphNet):
    """ResNet-(6n+2) for (N, C, H, W) images: see the module docstring.

    Parameters
    ----------
    input_dim : tuple of int, optional
        (C, H, W) of one image.
    output_size : int, optional
        Number of classes.
    n : int, optional
        Basic blocks per stage (3: ResNet-20).
    widths : tuple of int, optional
        Channels of the three stages.
    dtype : numpy dtype, optional
        Parameter dtype (float32 by default).
    layers : module, optional
        Layer classes (:mod:`fastconv.layers` by default, :mod:`fastconv.reference.layers` for NumPy).
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, n=3, widths=(16, 32, 64), dtype=np.float32,
                 layers=None):
        self._start(dtype, layers)
        L = self.L
        c = widths[0]
        items = self.conv_bn_relu(input_dim[0], c, 3)
        for stage, width in enumerate(widths):
            for block in range(n):
                stride = 2 if stage > 0 and block == 0 else 1
                body = Chain(self.conv_bn_relu(c, width, 3, stride)
                             + [self.conv(width, width, 3), self.bn(width)])
                shortcut = None
                if stride != 1 or width != c:
                    shortcut = Chain([self.conv(c, width, 1, stride, pad=0), self.bn(width)])
                items.append(Residual(body, shortcut, L.Add(), L.Relu()))
                c = width
        items += [L.GlobalAvgPooling(), self.affine(c, output_size, std=np.sqrt(1.0 / c))]
        self.body = Chain(items)
        self.last_layer = L.SoftmaxWithLoss()
