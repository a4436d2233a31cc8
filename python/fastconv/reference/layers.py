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
    "Convolution", "Pooling", "AvgPooling",
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
    """2-D convolution (cross-correlation) through im2col and a matrix product.

    Parameters
    ----------
    W : ndarray
        Filters, shape (FN, C, FH, FW).
    b : ndarray
        Bias, shape (FN,).
    stride : int, optional
        Step between windows.
    pad : int, optional
        Zero padding on every side of H and W.
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

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
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)   # (N*OH*OW, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ self.col_W.T                           # (N*OH*OW, C*FH*FW)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


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
    """Concatenation of two inputs along ``axis``; the backward splits the gradient where they were joined."""

    def __init__(self, axis=1):
        self.axis = axis
        self.a_len = None

    def forward(self, a, b):
        self.a_len = a.shape[self.axis]
        return np.concatenate((a, b), axis=self.axis)

    def backward(self, dout):
        da, db = np.split(dout, [self.a_len], axis=self.axis)
        return da.copy(), db.copy()


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
