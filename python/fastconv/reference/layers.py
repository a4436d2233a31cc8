"""Reference layers with forward/backward (book: ``common/layers.py``).

Same classes, constructor signatures and public attributes as the book. Layers
read their parameters (``self.W``, ``self.b``, ...) at every call, because the
optimizers update them in place and ``load_params`` rebinds them. Outputs follow
NumPy's promotion of the input and parameter dtypes. Conv/pool shape letters:
x is (N, C, H, W), W is (FN, C, FH, FW), outputs are (N, FN or C, OH, OW).
"""
import numpy as np

from .functions import _targets, cross_entropy_error, sigmoid, softmax
from .util import col2im, conv_output_size, im2col

__all__ = [
    "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
    "Convolution", "Deconvolution", "Pooling", "AvgPooling", "ZeroPadding", "Cropping",
]


# ============================================================================
# activations
# ============================================================================

class Relu:
    """ReLU layer: ``max(0, x)``; remembers where ``x <= 0`` for the backward pass."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        """Apply ReLU.

        Parameters
        ----------
        x : ndarray
            Input of any shape.

        Returns
        -------
        ndarray
            ``x`` with non-positive entries set to 0.
        """
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        """Gradient with respect to the input.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape of the forward output.

        Returns
        -------
        ndarray
            ``dout`` with the entries where ``x <= 0`` set to 0 (``dout`` itself is not modified).
        """
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid:
    """Sigmoid layer; remembers its output for the backward pass."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        """Apply the sigmoid.

        Parameters
        ----------
        x : ndarray
            Input of any shape.

        Returns
        -------
        ndarray
            ``sigmoid(x)``.
        """
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        """Gradient with respect to the input.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient.

        Returns
        -------
        ndarray
            ``dout * (1 - out) * out``.
        """
        return dout * (1.0 - self.out) * self.out


# ============================================================================
# fully connected
# ============================================================================

class Affine:
    """Fully connected layer ``x @ W + b``; inputs of any ndim >= 2 are flattened to (N, -1).

    Parameters
    ----------
    W : ndarray
        Weights, shape (D, M).
    b : ndarray
        Bias, shape (M,).
    """

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        """Compute ``x.reshape(N, -1) @ W + b``.

        Parameters
        ----------
        x : ndarray
            Input, shape (N, ...) with D elements per sample.

        Returns
        -------
        ndarray
            Output, shape (N, M).
        """
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        """Gradients; stores ``dW`` and ``db``.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape (N, M).

        Returns
        -------
        ndarray
            ``dx`` in the original shape of ``x``.
        """
        dx = dout @ self.W.T
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dx.reshape(self.original_x_shape)


# ============================================================================
# loss
# ============================================================================

class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss; targets are integer labels or dense (one-hot)."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        """Compute the mean cross-entropy of ``softmax(x)`` against ``t``.

        Parameters
        ----------
        x : ndarray
            Scores, shape (N, C) (or (C,) for a batch of one).
        t : ndarray
            Integer labels of shape (N,), or dense targets of the shape of ``x``.

        Returns
        -------
        numpy scalar
            The loss.
        """
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        """Gradient of the loss with respect to the scores.

        Parameters
        ----------
        dout : scalar, optional
            Upstream gradient of the loss.

        Returns
        -------
        ndarray
            ``(y - t) / N * dout`` (labels taken as one-hot), shape of ``x``.
        """
        y2, t2, dense = _targets(self.y, self.t)
        n = y2.shape[0]
        if dense:
            dx = y2 - t2
        else:
            dx = y2.copy()
            dx[np.arange(n), t2] -= 1
        dx = dx / n * dout
        return dx.reshape(self.y.shape)


# ============================================================================
# regularisation
# ============================================================================

class Dropout:
    """Dropout (the book's form: train drops, test scales by ``1 - dropout_ratio``).

    Parameters
    ----------
    dropout_ratio : float, optional
        Probability of dropping a unit during training.
    """

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        """Drop units (training) or scale them (inference).

        Parameters
        ----------
        x : ndarray
            Input of any shape.
        train_flg : bool, optional
            Training mode draws a new mask from ``np.random.rand``.

        Returns
        -------
        ndarray
            ``x * mask`` when training, ``x * (1 - dropout_ratio)`` otherwise; dtype of ``x``.
        """
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        # A Python float scalar does not promote float32 arrays.
        return x * float(1.0 - self.dropout_ratio)

    def backward(self, dout):
        """Gradient with respect to the input.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient.

        Returns
        -------
        ndarray
            ``dout * mask``.
        """
        return dout * self.mask


class BatchNormalization:
    """Batch normalisation over the batch axis (the book's form).

    Inputs with ndim != 2 are flattened to (N, -1), so a (N, C, H, W) input is
    normalised per element of C*H*W, as in the book.

    Parameters
    ----------
    gamma : ndarray
        Scale, shape (D,).
    beta : ndarray
        Shift, shape (D,).
    momentum : float, optional
        Weight of the old value in the running averages.
    running_mean, running_var : ndarray, optional
        Running statistics, shape (D,); zeros of the dtype of ``x`` at the first forward if None.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        """Normalise with batch statistics (training) or running statistics (inference).

        Parameters
        ----------
        x : ndarray
            Input, shape (N, D) or (N, ...) with D elements per sample.
        train_flg : bool, optional
            Training mode uses and updates the batch statistics.

        Returns
        -------
        ndarray
            ``gamma * xn + beta``, shape of ``x``.
        """
        self.input_shape = x.shape
        x2 = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x2.shape[1], dtype=x.dtype)
        if self.running_var is None:
            self.running_var = np.zeros(x2.shape[1], dtype=x.dtype)
        if train_flg:
            mu = x2.mean(axis=0)
            xc = x2 - mu
            var = np.mean(xc ** 2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std
            self.batch_size = x2.shape[0]
            self.xc = xc
            self.xn = xn
            self.std = std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xn = (x2 - self.running_mean) / np.sqrt(self.running_var + 10e-7)
        out = self.gamma * xn + self.beta
        return out.reshape(self.input_shape)

    def backward(self, dout):
        """Gradients of a training-mode forward; stores ``dgamma`` and ``dbeta``.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape of the forward output.

        Returns
        -------
        ndarray
            ``dx``, shape of the forward input.
        """
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(self.input_shape)


# ============================================================================
# convolution and pooling
# ============================================================================

def _check_pool_args(pool_h, pool_w, stride, pad):
    """Every window must hold a real element, which ``pad < pool`` guarantees."""
    if pool_h < 1 or pool_w < 1 or stride < 1 or pad < 0:
        raise ValueError(f"need pool >= 1, stride >= 1, pad >= 0; got pool=({pool_h}, {pool_w}), "
                         f"stride={stride}, pad={pad}")
    if pad >= pool_h or pad >= pool_w:
        raise ValueError(f"pad must be smaller than the pool window, got pad={pad} "
                         f"for pool=({pool_h}, {pool_w})")


def _check_4d(x, name="x"):
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")


class Convolution:
    """2-D convolution (cross-correlation) through im2col and a matrix product (the book's geometry), or
    through one strided view of the padded input per tap (any other geometry).

    Parameters
    ----------
    W : ndarray
        Filters, shape (FN, C/groups, FH, FW).
    b : ndarray or None
        Bias, shape (FN,); None: no bias (``db`` stays None).
    stride : int or (sh, sw), optional
        Step between windows.
    pad : int, (ph, pw), (top, bottom, left, right), "valid" or "same", optional
        Zero padding; "same" gives an output of ceil(H / sh) x ceil(W / sw) with the odd pixel of padding at
        the bottom / right (TensorFlow).
    dilation : int or (dh, dw), optional
        Distance between taps.
    groups : int, optional
        Filters f of group g = f // (FN/groups) see only the channels of group g.
    """

    def __init__(self, W, b=None, stride=1, pad=0, dilation=1, groups=1):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.dilation = dilation
        self.groups = groups
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def _book(self):
        """The book's geometry (int stride and pad, no dilation, one group, a bias): its im2col path."""
        return (isinstance(self.stride, (int, np.integer)) and isinstance(self.pad, (int, np.integer))
                and self.dilation == 1 and self.groups == 1 and self.b is not None)

    def forward(self, x):
        """Convolve.

        Parameters
        ----------
        x : ndarray
            Images, shape (N, C, H, W).

        Returns
        -------
        ndarray
            Feature maps, shape (N, FN, OH, OW).
        """
        _check_4d(x)
        if not self._book():
            self.x = x
            out, self._geom = _conv_general(x, self.W, self.stride, self.pad, self.dilation, self.groups)
            return out if self.b is None else out + self.b.reshape(1, -1, 1, 1)
        FN, C, FH, FW = self.W.shape
        N, xC, H, W = x.shape
        if xC != C:
            raise ValueError(f"x has {xC} channels but W expects {C} (W shape {self.W.shape})")
        OH = conv_output_size(H, FH, self.stride, self.pad)
        OW = conv_output_size(W, FW, self.stride, self.pad)
        col = im2col(x, FH, FW, self.stride, self.pad)   # (N*OH*OW, C*FH*FW)
        col_W = self.W.reshape(FN, -1).T                # (C*FH*FW, FN)
        out = col @ col_W + self.b                      # (N*OH*OW, FN)
        self.x = x
        self.col = col
        self.col_W = col_W
        return np.ascontiguousarray(out.reshape(N, OH, OW, FN).transpose(0, 3, 1, 2))

    def backward(self, dout):
        """Gradients; stores ``dW`` and ``db``.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape (N, FN, OH, OW).

        Returns
        -------
        ndarray
            ``dx``, shape (N, C, H, W).
        """
        if not self._book():
            dx, self.dW = _conv_general_backward(self.x, self.W, dout, self._geom, self.groups)
            self.db = None if self.b is None else np.sum(dout, axis=(0, 2, 3))
            return dx
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)   # (N*OH*OW, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ self.col_W.T                           # (N*OH*OW, C*FH*FW)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _pads(pad, H, W, eh, ew, sh, sw):
    """(top, bottom, left, right) of a padding argument; "same" pads (out - 1)*stride + extent - size in
    all, half of it (rounded down) before, so that out = ceil(size / stride)."""
    if isinstance(pad, str):
        if pad == "valid":
            return 0, 0, 0, 0
        if pad != "same":
            raise ValueError(f"unknown padding {pad!r}")
        out = []
        for size, extent, stride in ((H, eh, sh), (W, ew, sw)):
            total = max((-(-size // stride) - 1) * stride + extent - size, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)
    if isinstance(pad, (tuple, list)):
        if len(pad) == 2 and isinstance(pad[0], (tuple, list)):
            return (*pad[0], *pad[1])
        if len(pad) == 2:
            return pad[0], pad[0], pad[1], pad[1]
        return tuple(pad)
    return pad, pad, pad, pad


def _conv_general(x, Wt, stride, pad, dilation, groups):
    """out (N, FN, OH, OW) = sum over taps (fh, fw) of the padded input seen at (oh*sh + fh*dh, ow*sw + fw*dw),
    times W[:, :, fh, fw], group by group; and the geometry for the backward pass."""
    N, C, H, W = x.shape
    FN, Cg, FH, FW = Wt.shape
    if Cg * groups != C or FN % groups:
        raise ValueError(f"W {Wt.shape} does not fit x {x.shape} with groups={groups}")
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pb, pl, pr = _pads(pad, H, W, dh * (FH - 1) + 1, dw * (FW - 1) + 1, sh, sw)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - dh * (FH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (FW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"filter {FH}x{FW} does not fit the padded input {xp.shape[2:]}")
    G, FNg = groups, FN // groups
    out = np.zeros((N, G, FNg, OH, OW), dtype=np.result_type(x, Wt))
    for fh in range(FH):
        for fw in range(FW):
            # (N, C, OH, OW): tap (fh, fw) of every output pixel
            v = xp[:, :, fh * dh:fh * dh + sh * (OH - 1) + 1:sh, fw * dw:fw * dw + sw * (OW - 1) + 1:sw]
            wk = Wt[:, :, fh, fw].reshape(G, FNg, Cg)
            out += np.einsum("ngchw,gfc->ngfhw", v.reshape(N, G, Cg, OH, OW), wk)
    geom = (sh, sw, pt, pb, pl, pr, dh, dw, OH, OW)
    return out.reshape(N, FN, OH, OW), geom


def _conv_general_backward(x, Wt, dout, geom, groups):
    """(dx, dW) of :func:`_conv_general`: each tap's products scattered back and summed."""
    N, C, H, W = x.shape
    FN, Cg, FH, FW = Wt.shape
    sh, sw, pt, pb, pl, pr, dh, dw, OH, OW = geom
    G, FNg = groups, FN // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxp = np.zeros(xp.shape, dtype=np.result_type(x, Wt, dout))
    dW = np.zeros(Wt.shape, dtype=dxp.dtype)
    dg = dout.reshape(N, G, FNg, OH, OW)
    for fh in range(FH):
        for fw in range(FW):
            hs = slice(fh * dh, fh * dh + sh * (OH - 1) + 1, sh)
            ws = slice(fw * dw, fw * dw + sw * (OW - 1) + 1, sw)
            v = xp[:, :, hs, ws].reshape(N, G, Cg, OH, OW)
            wk = Wt[:, :, fh, fw].reshape(G, FNg, Cg)
            dxp[:, :, hs, ws] += np.einsum("ngfhw,gfc->ngchw", dg, wk).reshape(N, C, OH, OW)
            dW[:, :, fh, fw] = np.einsum("ngchw,ngfhw->gfc", v, dg).reshape(FN, Cg)
    return np.ascontiguousarray(dxp[:, :, pt:pt + H, pl:pl + W]), dW


class Deconvolution:
    """Transposed convolution, from its definition: input pixel (ih, iw) of channel ci adds
    ``x[n, ci, ih, iw] * W[ci, co, fh, fw]`` to output (ih*sh + fh - pt, iw*sw + fw - pl) of channel co
    (torch.nn.functional.conv_transpose2d).

    Parameters
    ----------
    W : ndarray
        Filters, shape (C_in, C_out, FH, FW).
    b : ndarray or None
        Bias, shape (C_out,).
    stride : int or (sh, sw), optional
    pad : int, (ph, pw), (top, bottom, left, right), "same" or "valid", optional
        Rows and columns cropped from the full output; "same" (Keras' Conv2DTranspose) gives H*sh x W*sw,
        "valid" H*sh + max(FH - sh, 0).
    output_padding : int or (oph, opw), optional
        Rows / columns added at the bottom / right.
    """

    def __init__(self, W, b=None, stride=1, pad=0, output_padding=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.output_padding = output_padding
        self.x = None
        self.dW = None
        self.db = None

    def _geometry(self, H, W):
        FH, FW = self.W.shape[2:]
        sh, sw = _pair(self.stride)
        if isinstance(self.pad, str):
            th, tw = (max(FH - sh, 0), max(FW - sw, 0)) if self.pad == "same" else (0, 0)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
            oph, opw = max(sh - FH, 0), max(sw - FW, 0)
        else:
            pads = _pads(self.pad, H, W, FH, FW, sh, sw)
            oph, opw = _pair(self.output_padding)
        OH = (H - 1) * sh + FH - pads[0] - pads[1] + oph
        OW = (W - 1) * sw + FW - pads[2] - pads[3] + opw
        # the full output, before cropping: every product lands inside, and the cropped window fits
        full = ((H - 1) * sh + FH + oph, (W - 1) * sw + FW + opw)
        return sh, sw, pads, OH, OW, full

    def forward(self, x):
        """Scatter every input pixel's products into the full output and crop it.

        Parameters
        ----------
        x : ndarray
            Input, shape (N, C_in, H, W).

        Returns
        -------
        ndarray
            Output, shape (N, C_out, OH, OW).
        """
        _check_4d(x)
        N, _, H, W = x.shape
        _, C_out, FH, FW = self.W.shape
        sh, sw, (pt, _, pl, _), OH, OW, full = self._geometry(H, W)
        y = np.zeros((N, C_out) + full, dtype=np.result_type(x, self.W))
        for fh in range(FH):
            for fw in range(FW):
                # input pixel (ih, iw) lands at (ih*sh + fh, iw*sw + fw) of the full output
                y[:, :, fh:fh + sh * (H - 1) + 1:sh, fw:fw + sw * (W - 1) + 1:sw] += np.einsum(
                    "nihw,io->nohw", x, self.W[:, :, fh, fw])
        self.x = x
        out = y[:, :, pt:pt + OH, pl:pl + OW]
        if self.b is not None:
            out = out + self.b.reshape(1, -1, 1, 1)
        return np.ascontiguousarray(out)

    def backward(self, dout):
        """Gradients; stores ``dW`` and ``db``.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape (N, C_out, OH, OW).

        Returns
        -------
        ndarray
            ``dx``, shape (N, C_in, H, W).
        """
        x = self.x
        N, _, H, W = x.shape
        _, C_out, FH, FW = self.W.shape
        sh, sw, (pt, _, pl, _), OH, OW, full = self._geometry(H, W)
        dy = np.zeros((N, C_out) + full, dtype=np.result_type(dout, self.W))
        dy[:, :, pt:pt + OH, pl:pl + OW] = dout
        dx = np.zeros(x.shape, dtype=dy.dtype)
        self.dW = np.zeros(self.W.shape, dtype=dy.dtype)
        for fh in range(FH):
            for fw in range(FW):
                v = dy[:, :, fh:fh + sh * (H - 1) + 1:sh, fw:fw + sw * (W - 1) + 1:sw]  # (N, C_out, H, W)
                dx += np.einsum("nohw,io->nihw", v, self.W[:, :, fh, fw])
                self.dW[:, :, fh, fw] = np.einsum("nihw,nohw->io", x, v)
        self.db = None if self.b is None else np.sum(dout, axis=(0, 2, 3))
        return dx


class ZeroPadding:
    """Zero padding of every (H, W) plane (Keras' ZeroPadding2D in NCHW).

    Parameters
    ----------
    pad : int, (ph, pw), (top, bottom, left, right) or ((top, bottom), (left, right))
    """

    def __init__(self, pad):
        self.pad = pad

    def forward(self, x):
        """Pad with zeros; returns (N, C, H + top + bottom, W + left + right)."""
        _check_4d(x)
        t, b, l, r = _pads(self.pad, 0, 0, 0, 0, 1, 1)
        return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))

    def backward(self, dout):
        """The gradient: dout without the padded border."""
        t, b, l, r = _pads(self.pad, 0, 0, 0, 0, 1, 1)
        return np.ascontiguousarray(dout[:, :, t:dout.shape[2] - b, l:dout.shape[3] - r])


class Cropping:
    """Cropping of every (H, W) plane (Keras' Cropping2D in NCHW).

    Parameters
    ----------
    crop : int, (ch, cw), (top, bottom, left, right) or ((top, bottom), (left, right))
    """

    def __init__(self, crop):
        self.crop = crop
        self.x_shape = None

    def forward(self, x):
        """Crop; returns (N, C, H - top - bottom, W - left - right)."""
        _check_4d(x)
        t, b, l, r = _pads(self.crop, 0, 0, 0, 0, 1, 1)
        self.x_shape = x.shape
        return np.ascontiguousarray(x[:, :, t:x.shape[2] - b, l:x.shape[3] - r])

    def backward(self, dout):
        """The gradient: dout put back in place, zeros where the border was."""
        t, b, l, r = _pads(self.crop, 0, 0, 0, 0, 1, 1)
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        dx[:, :, t:self.x_shape[2] - b, l:self.x_shape[3] - r] = dout
        return dx


def _pool_windows(x, pool_h, pool_w, stride, pad, fill):
    """(windows, geometry): windows (N, C, OH, OW, pool_h*pool_w) of x padded with ``fill`` per side."""
    N, C, H, W = x.shape
    sh, sw = _pair(stride)
    pt, pb, pl, pr = _pads(pad, H, W, pool_h, pool_w, sh, sw)
    if max(pt, pb) >= pool_h or max(pl, pr) >= pool_w:
        raise ValueError(f"pad must be smaller than the pool window, got pad={(pt, pb, pl, pr)} "
                         f"for pool=({pool_h}, {pool_w})")
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    OH = (H + pt + pb - pool_h) // sh + 1
    OW = (W + pl + pr - pool_w) // sw + 1
    win = np.empty((N, C, OH, OW, pool_h * pool_w), dtype=x.dtype)
    for i in range(pool_h):
        for j in range(pool_w):
            win[..., i * pool_w + j] = xp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]
    return win, (sh, sw, pt, pb, pl, pr, OH, OW)


def _pool_scatter(dwin, x_shape, pool_h, pool_w, geom):
    """The adjoint of :func:`_pool_windows`: dwin (N, C, OH, OW, pool_h*pool_w) summed back into x's shape."""
    N, C, H, W = x_shape
    sh, sw, pt, pb, pl, pr, OH, OW = geom
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), dtype=dwin.dtype)
    for i in range(pool_h):
        for j in range(pool_w):
            dxp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw] += dwin[..., i * pool_w + j]
    return np.ascontiguousarray(dxp[:, :, pt:pt + H, pl:pl + W])


def _book_pool(stride, pad):
    return isinstance(stride, (int, np.integer)) and isinstance(pad, (int, np.integer))


class Pooling:
    """Max pooling; padded positions never win (``pad`` is applied correctly, unlike the book).

    Parameters
    ----------
    pool_h, pool_w : int
        Window height and width.
    stride : int, optional
        Step between windows.
    pad : int, optional
        Padding on every side; must be smaller than ``pool_h`` and ``pool_w``.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        if _book_pool(stride, pad):
            _check_pool_args(pool_h, pool_w, stride, pad)
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x):
        """Take the maximum of every window.

        Parameters
        ----------
        x : ndarray
            Images, shape (N, C, H, W).

        Returns
        -------
        ndarray
            Pooled maps, shape (N, C, OH, OW) with ``OH = (H + 2*pad - pool_h)//stride + 1``.
        """
        _check_4d(x)
        if not _book_pool(self.stride, self.pad):  # per-side padding or per-axis stride
            win, self._geom = _pool_windows(x, self.pool_h, self.pool_w, self.stride, self.pad, -np.inf)
            self.arg_max = np.argmax(win, axis=-1)  # (N, C, OH, OW): first maximum in row-major window order
            self.x = x
            return np.take_along_axis(win, self.arg_max[..., None], axis=-1)[..., 0]
        N, C, H, W = x.shape
        p = self.pad
        OH = conv_output_size(H, self.pool_h, self.stride, p)
        OW = conv_output_size(W, self.pool_w, self.stride, p)
        # -inf padding: a padded position can never be the maximum, and since
        # pad < pool every window holds at least one real element.
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf) if p else x
        col = im2col(xp, self.pool_h, self.pool_w, self.stride, 0)
        col = col.reshape(-1, self.pool_h * self.pool_w)    # rows ordered (n, oh, ow, c)
        self.arg_max = np.argmax(col, axis=1)               # first maximum in row-major window order
        out = col[np.arange(col.shape[0]), self.arg_max]
        self.x = x
        return np.ascontiguousarray(out.reshape(N, OH, OW, C).transpose(0, 3, 1, 2))

    def backward(self, dout):
        """Route each gradient to the maximum of its window, summing where windows overlap.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape (N, C, OH, OW).

        Returns
        -------
        ndarray
            ``dx``, shape (N, C, H, W).
        """
        pool_size = self.pool_h * self.pool_w
        if not _book_pool(self.stride, self.pad):
            dwin = np.zeros(dout.shape + (pool_size,), dtype=dout.dtype)
            np.put_along_axis(dwin, self.arg_max[..., None], dout[..., None], axis=-1)
            return _pool_scatter(dwin, self.x.shape, self.pool_h, self.pool_w, self._geom)
        dflat = dout.transpose(0, 2, 3, 1).reshape(-1)       # (N*OH*OW*C,)
        dmax = np.zeros((dflat.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(dflat.size), self.arg_max] = dflat
        N, C = self.x.shape[:2]
        dcol = dmax.reshape(dflat.size // C, C * pool_size)  # (N*OH*OW, C*PH*PW)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class AvgPooling:
    """Average pooling that counts padded zeros (always divides by ``pool_h * pool_w``).

    Not in the book; matches PyTorch's ``AvgPool2d(count_include_pad=True)``.

    Parameters
    ----------
    pool_h, pool_w : int
        Window height and width.
    stride : int, optional
        Step between windows.
    pad : int, optional
        Zero padding on every side; must be smaller than ``pool_h`` and ``pool_w``.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        if _book_pool(stride, pad):
            _check_pool_args(pool_h, pool_w, stride, pad)
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None

    def forward(self, x):
        """Take the mean of every window, padded zeros included.

        Parameters
        ----------
        x : ndarray
            Images, shape (N, C, H, W).

        Returns
        -------
        ndarray
            Pooled maps, shape (N, C, OH, OW).
        """
        _check_4d(x)
        if not _book_pool(self.stride, self.pad):  # per-side padding or per-axis stride
            win, self._geom = _pool_windows(x, self.pool_h, self.pool_w, self.stride, self.pad, 0)
            self.x = x
            return win.mean(axis=-1)
        N, C, H, W = x.shape
        OH = conv_output_size(H, self.pool_h, self.stride, self.pad)
        OW = conv_output_size(W, self.pool_w, self.stride, self.pad)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        out = col.reshape(-1, self.pool_h * self.pool_w).mean(axis=1)   # rows ordered (n, oh, ow, c)
        self.x = x
        return np.ascontiguousarray(out.reshape(N, OH, OW, C).transpose(0, 3, 1, 2))

    def backward(self, dout):
        """Spread each gradient evenly over its window; the share of padded positions is dropped.

        Parameters
        ----------
        dout : ndarray
            Upstream gradient, shape (N, C, OH, OW).

        Returns
        -------
        ndarray
            ``dx``, shape (N, C, H, W).
        """
        pool_size = self.pool_h * self.pool_w
        if not _book_pool(self.stride, self.pad):
            dwin = np.broadcast_to((dout / pool_size)[..., None], dout.shape + (pool_size,))
            return _pool_scatter(dwin, self.x.shape, self.pool_h, self.pool_w, self._geom)
        N, C = self.x.shape[:2]
        dflat = dout.transpose(0, 2, 3, 1).reshape(-1, 1) / pool_size  # (N*OH*OW*C, 1)
        dcol = np.broadcast_to(dflat, (dflat.shape[0], pool_size)).reshape(-1, C * pool_size)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


# ============================================================================
# layers of issue 16 (elementwise and normalisation half)
# ============================================================================

__all__ += [
    "LeakyRelu", "Tanh", "SpatialBatchNormalization", "GlobalAvgPooling", "GlobalMaxPooling", "Upsampling",
    "Add", "Concat", "SigmoidWithLoss", "MeanSquaredError",
]


class LeakyRelu:
    """Leaky ReLU: ``x`` where ``x > 0``, ``alpha * x`` where ``x <= 0``."""

    def __init__(self, alpha=0.2):
        self.alpha = alpha
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] *= self.alpha
        return out

    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] *= self.alpha
        return dx


class Tanh:
    """Hyperbolic tangent; ``d tanh(x) / dx = 1 - tanh(x)**2``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out ** 2)


class SpatialBatchNormalization:
    """Batch normalisation of (N, C, H, W) with statistics per channel over (N, H, W).

    The formulas of the book's BatchNormalization with the reduction taken over the axes (0, 2, 3):
    ``xn = (x - mu) / sqrt(var + eps)`` with the biased variance, ``out = gamma * xn + beta``; running
    averages ``momentum * running + (1 - momentum) * batch``, zeros of x's dtype when None.
    """

    def __init__(self, gamma, beta, momentum=0.9, eps=1e-5, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    @staticmethod
    def _c(v):
        """A per-channel vector as (1, C, 1, 1), to broadcast over (N, C, H, W)."""
        return np.reshape(v, (1, -1, 1, 1))

    def forward(self, x, train_flg=True):
        C = x.shape[1]
        if self.running_mean is None:
            self.running_mean = np.zeros(C, dtype=x.dtype)
        if self.running_var is None:
            self.running_var = np.zeros(C, dtype=x.dtype)
        if train_flg:
            mu = x.mean(axis=(0, 2, 3))
            xc = x - self._c(mu)
            var = np.mean(xc ** 2, axis=(0, 2, 3))
            std = np.sqrt(var + self.eps)
            xn = xc / self._c(std)
            self.xc, self.xn, self.std = xc, xn, std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xn = (x - self._c(self.running_mean)) / self._c(np.sqrt(self.running_var + self.eps))
        return self._c(self.gamma) * xn + self._c(self.beta)

    def backward(self, dout):
        # the book's chain rule, summed over (N, H, W) where the book sums over N
        M = dout.shape[0] * dout.shape[2] * dout.shape[3]
        axes = (0, 2, 3)
        self.dbeta = dout.sum(axis=axes).reshape(np.shape(self.beta))
        self.dgamma = np.sum(self.xn * dout, axis=axes).reshape(np.shape(self.gamma))
        dxn = self._c(self.gamma) * dout
        dxc = dxn / self._c(self.std)
        dstd = -np.sum((dxn * self.xc) / self._c(self.std * self.std), axis=axes)
        dvar = 0.5 * dstd / self.std
        dxc = dxc + (2.0 / M) * self.xc * self._c(dvar)
        dmu = np.sum(dxc, axis=axes)
        return dxc - self._c(dmu) / M


class GlobalAvgPooling:
    """Mean over each (H, W) plane: (N, C, H, W) -> (N, C)."""

    def __init__(self):
        self.x_shape = None

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout):
        H, W = self.x_shape[2:]
        return np.broadcast_to((dout / (H * W))[:, :, None, None], self.x_shape).copy()


class GlobalMaxPooling:
    """Max over each (H, W) plane: (N, C, H, W) -> (N, C); the gradient goes to the first maximum."""

    def __init__(self):
        self.x_shape = None
        self.arg_max = None

    def forward(self, x):
        self.x_shape = x.shape
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        self.arg_max = np.argmax(flat, axis=2)
        return np.max(flat, axis=2)

    def backward(self, dout):
        N, C, H, W = self.x_shape
        dx = np.zeros((N, C, H * W), dtype=dout.dtype)
        n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
        dx[n, c, self.arg_max] = dout
        return dx.reshape(self.x_shape)


def _bilinear_matrix(n_in, scale, dtype):
    """The (n_in * scale, n_in) interpolation matrix of one axis, align_corners=False: output o samples the
    input at ``src = (o + 0.5) / scale - 0.5`` (clamped at 0), linearly between its two neighbours (the last
    index repeated at the border)."""
    n_out = n_in * scale
    A = np.zeros((n_out, n_in), dtype=dtype)
    for o in range(n_out):
        src = max((o + 0.5) / scale - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        A[o, i0] += 1.0 - lam
        A[o, i1] += lam
    return A


class Upsampling:
    """Upsampling of (N, C, H, W) by integer factors: nearest (each pixel repeated) or bilinear
    (align_corners=False), written as out = Ah @ x @ Aw.T per plane with one interpolation matrix per axis, so
    the backward is the transpose: dx = Ah.T @ dout @ Aw."""

    def __init__(self, scale=2, mode="nearest"):
        self.scale = scale
        self.mode = mode
        self.mats = None

    def _matrices(self, H, W, dtype):
        sh, sw = self.scale if isinstance(self.scale, (tuple, list)) else (self.scale, self.scale)
        if self.mode == "nearest":
            Ah = np.repeat(np.eye(H, dtype=dtype), sh, axis=0)
            Aw = np.repeat(np.eye(W, dtype=dtype), sw, axis=0)
        elif self.mode == "bilinear":
            Ah, Aw = _bilinear_matrix(H, sh, dtype), _bilinear_matrix(W, sw, dtype)
        else:
            raise ValueError(f"mode: expected 'nearest' or 'bilinear', got {self.mode!r}")
        return Ah, Aw

    def forward(self, x):
        self.mats = self._matrices(x.shape[2], x.shape[3], x.dtype)
        Ah, Aw = self.mats
        rows = np.einsum("oh,nchw->ncow", Ah, x)  # along H first, then along W: two small products
        return np.einsum("ncow,pw->ncop", rows, Aw)

    def backward(self, dout):
        Ah, Aw = self.mats
        cols = np.einsum("ncop,pw->ncow", dout, Aw)
        return np.einsum("oh,ncow->nchw", Ah, cols)


class Add:
    """``a + b``; the gradient reaches both inputs unchanged."""

    def forward(self, a, b):
        return a + b

    def backward(self, dout):
        return dout.copy(), dout.copy()


class Concat:
    """Concatenation of two or more inputs along ``axis``; the backward splits the gradient where they were
    joined."""

    def __init__(self, axis=1):
        self.axis = axis
        self.lengths = None

    def forward(self, *xs):
        self.lengths = [x.shape[self.axis] for x in xs]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, dout):
        parts = np.split(dout, np.cumsum(self.lengths[:-1]), axis=self.axis)
        return tuple(p.copy() for p in parts)


class SigmoidWithLoss:
    """Sigmoid + binary cross-entropy on logits, the mean over all elements of
    ``-t * log(y) - (1 - t) * log(1 - y)`` with ``y = sigmoid(x)``, evaluated as ``max(x, 0) - x * t +
    log(1 + exp(-|x|))`` (the same value, without overflow or log(0)). ``d loss / dx = (y - t) / x.size``."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = sigmoid(x)
        self.loss = np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))
        return self.loss

    def backward(self, dout=1):
        return (self.y - self.t) * (dout / self.y.size)


class MeanSquaredError:
    """``mean((y - t)**2)`` over all elements; ``d loss / dy = 2 * (y - t) / y.size``."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.y, self.t = x, t
        self.loss = np.mean((x - t) ** 2)
        return self.loss

    def backward(self, dout=1):
        return (self.y - self.t) * (2.0 * dout / self.y.size)
