"""DCGAN (Radford et al. 2016) as the TensorFlow/Keras DCGAN tutorial builds it for 28x28 images, on fastconv's
layers, and its training loop.

Generator, from noise z of ``noise_dim`` (100): Affine to 7*7*256 without bias - BatchNormalization - ReLU -
reshape to (256, 7, 7) - transposed conv 128 5x5 stride 1 - BN - ReLU - transposed conv 64 5x5 stride 2 - BN - ReLU -
transposed conv 1 5x5 stride 2 - tanh: images in [-1, 1]. The transposed convolutions have no bias and Keras'
``padding='same'`` (output ``in * stride``; with stride 2 a 5x5 filter's output is cropped by 1 row/column at the
top/left and 2 at the bottom/right, TensorFlow's rule).
Discriminator: conv 64 5x5 stride 2 'same' - LeakyReLU 0.2 - Dropout 0.3 - conv 128 5x5 stride 2 'same' -
LeakyReLU 0.2 - Dropout 0.3 - flatten - Affine 6272 -> 1: one logit. Both losses are binary cross-entropy on the
logit (``SigmoidWithLoss``); both networks use Adam with learning rate 1e-4, as the tutorial.

Weights are N(0, 0.02**2) as the DCGAN paper initialises them (the tutorial keeps Keras' Glorot default; the paper's
is the one DCGANs are known to train with).
"""

from __future__ import annotations

import math
import os
import socket
import time

import numpy as np

from .graph import Chain, GraphNet

__all__ = ["Generator", "Discriminator", "DCGAN", "train_dcgan", "sample_grid"]

_STD = 0.02


class _Reshape:
    """(N, ...) <-> (N, *shape): no arithmetic."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.in_shape = None

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dout):
        return dout.reshape(self.in_shape)


class Generator(GraphNet):
    """The tutorial's generator: see the module docstring. ``predict(z, train_flg)`` gives (N, 1, 28, 28)."""

    def __init__(self, noise_dim=100, dtype=np.float32, layers=None):
        self._start(dtype, layers)
        L = self.L
        self.noise_dim = int(noise_dim)
        items = [self.affine(self.noise_dim, 7 * 7 * 256, std=_STD, bias=False), self.bn(7 * 7 * 256, spatial=False),
                 L.Relu(), _Reshape((256, 7, 7))]
        for c_in, c_out, stride in ((256, 128, 1), (128, 64, 2)):
            items += [self.deconv(c_in, c_out, 5, stride, pad="same", std=_STD),
                      self.bn(c_out), L.Relu()]
        items += [self.deconv(64, 1, 5, 2, pad="same", std=_STD), L.Tanh()]
        self.body = Chain(items)

    def backward(self, dout):
        """Gradients of the parameters (kept in the layers, read by :meth:`grads`) from d loss / d images."""
        return self.body.backward(dout)


class Discriminator(GraphNet):
    """The tutorial's discriminator: see the module docstring. ``predict(x, train_flg)`` gives (N, 1) logits;
    ``loss(x, t)`` is the binary cross-entropy against targets t of that shape."""

    def __init__(self, input_dim=(1, 28, 28), dtype=np.float32, layers=None):
        self._start(dtype, layers)
        L = self.L
        c, h, w = input_dim
        items = []
        for width in (64, 128):
            W = (_STD * np.random.randn(width, c, 5, 5)).astype(self._dtype)
            b = np.zeros(width, dtype=self._dtype)
            layer = L.Convolution(W, b, stride=2, pad="same")
            self._n_weight += 1
            self._new("W", W, layer, "W")
            self._new("b", b, layer, "b")
            items += [layer, L.LeakyRelu(0.2), L.Dropout(0.3)]
            c, h, w = width, -(-h // 2), -(-w // 2)
        items += [_Reshape((c * h * w,)), self.affine(c * h * w, 1, std=_STD)]
        self.body = Chain(items)
        self.last_layer = L.SigmoidWithLoss()


def _grads(net):
    return {key: getattr(layer, "d" + attr) for key, (layer, attr) in net._slots.items()}


class DCGAN:
    """A generator and a discriminator trained against each other (:meth:`train_step`), with their optimizers."""

    def __init__(self, noise_dim=100, lr=1e-4, dtype=np.float32, layers=None, seed=None):
        from .. import optimizer as _optimizer

        state = np.random.get_state()
        try:
            if seed is not None:
                np.random.seed(int(seed))
            self.generator = Generator(noise_dim, dtype=dtype, layers=layers)
            self.discriminator = Discriminator(dtype=dtype, layers=layers)
        finally:
            if seed is not None:
                np.random.set_state(state)
        self.rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.opt_g = _optimizer.Adam(lr=lr)
        self.opt_d = _optimizer.Adam(lr=lr)

    def noise(self, n):
        return self.rng.standard_normal((n, self.generator.noise_dim)).astype(self.dtype)

    def train_step(self, x_real):
        """One step of both networks on a batch of real images in [-1, 1]; returns (generator loss,
        discriminator loss), the discriminator's the sum of its losses on the real and the generated batch.

        As the tutorial's two gradient tapes, both gradients come from the networks before this step's updates:
        first the generator's (the discriminator should say 1 on its images), then the discriminator's. The
        discriminator sees the real and the generated images as one batch of 2N (it has no batch norm, so this
        is the two batches' forward and backward in one pass); the mean over 2N is half the sum of the two
        means, so its gradient is doubled to be the gradient of that sum, the tutorial's loss."""
        G, D = self.generator, self.discriminator
        n = x_real.shape[0]
        fake = G.predict(self.noise(n), train_flg=True)
        g_loss = float(D.loss(fake, np.ones((n, 1), self.dtype)))
        G.backward(D.body.backward(D.last_layer.backward()))
        x = np.concatenate([x_real.astype(self.dtype, copy=False), fake])
        t = np.concatenate([np.ones((n, 1), self.dtype), np.zeros((n, 1), self.dtype)])
        d_loss = 2.0 * float(D.loss(x, t))
        D.body.backward(2.0 * D.last_layer.backward())
        self.opt_d.update(D.params, _grads(D))
        self.opt_g.update(G.params, _grads(G))
        return g_loss, d_loss


def sample_grid(images, rows=4):
    """(N, 1, H, W) images in [-1, 1] as one (rows*H, cols*W) array in [0, 1], row by row, one pixel apart."""
    n, _, h, w = images.shape
    cols = math.ceil(n / rows)
    grid = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1))
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = (images[i, 0] + 1.0) / 2.0
    return np.clip(grid, 0.0, 1.0)


def train_dcgan(x_train, epochs=10, batch_size=256, out_dir=None, seed=0, noise_dim=100, lr=1e-4,
                progress=True, dtype=np.float32, echo=None, config=None):
    """Train a :class:`DCGAN` on images ``x_train`` ((N, 1, 28, 28), values in [0, 1]).

    Each epoch shuffles the images, runs ``N // batch_size`` steps and, when ``out_dir`` is given, writes
    ``samples_epoch_NNN.png`` (16 images from the same fixed noise every epoch, so the epochs can be compared),
    ``history.json`` (mean generator and discriminator loss per epoch, the planned and finished epochs, a
    ``status`` of "running" or "finished", and ``config`` when given: what the run was started with) and
    ``losses.png``, and the two networks' parameters (``generator.npz``, ``discriminator.npz``). ``progress``
    shows a progress line per step, ``echo`` (default: ``progress``) a line per epoch. Returns the history dict.
    """
    import json
    from pathlib import Path

    from .._atomic import atomic_write

    gan = DCGAN(noise_dim, lr, dtype=dtype, seed=seed)
    x = (np.asarray(x_train, dtype=dtype).reshape(-1, 1, 28, 28) * 2.0 - 1.0).astype(dtype)
    fixed = gan.noise(16)
    order = np.random.default_rng(seed)
    steps = x.shape[0] // batch_size
    if steps < 1:
        raise ValueError(f"batch_size: {batch_size} is larger than the {x.shape[0]} training images")
    hist = {"g_loss": [], "d_loss": [], "epoch_time_s": [], "epochs": int(epochs), "current_epoch": 0,
            "status": "running", "pid": os.getpid(), "host": socket.gethostname()}
    if config is not None:
        hist["config"] = dict(config)
    echo = progress if echo is None else echo
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    bar = _progress(progress)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perm = order.permutation(x.shape[0])
        g_sum = d_sum = 0.0
        for s in range(steps):
            g, d = gan.train_step(x[perm[s * batch_size:(s + 1) * batch_size]])
            g_sum, d_sum = g_sum + g, d_sum + d
            bar(epoch, epochs, s + 1, steps, g, d)
        hist["g_loss"].append(g_sum / steps)
        hist["d_loss"].append(d_sum / steps)
        hist["epoch_time_s"].append(time.perf_counter() - t0)
        hist["current_epoch"] = epoch
        if epoch == epochs:
            hist["status"] = "finished"
        if echo:
            print(f"{chr(10) if progress else ''}epoch {epoch}/{epochs}: generator loss {g_sum / steps:.4f}, "
                  f"discriminator loss {d_sum / steps:.4f}, {hist['epoch_time_s'][-1]:.1f} s", flush=True)
        if out is not None:
            grid = sample_grid(gan.generator.predict(fixed, train_flg=False))
            _save_png(out / f"samples_epoch_{epoch:03d}.png", grid)
            text = json.dumps(hist, indent=1) + "\n"
            atomic_write(out / "history.json", lambda f: f.write(text.encode("utf-8")))
            _plot_losses(out / "losses.png", hist)
            gan.generator.save_params(str(out / "generator.npz"))
            gan.discriminator.save_params(str(out / "discriminator.npz"))
    return hist


def _progress(enabled):
    def show(epoch, epochs, step, steps, g, d):
        if enabled and (step == steps or step % 20 == 0):
            print(f"\repoch {epoch}/{epochs} step {step}/{steps}  g_loss {g:.4f}  d_loss {d:.4f}", end="",
                  flush=True)

    return show


def _save_png(path, grid):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is an optional extra: no figure without it
        return
    plt.imsave(str(path), grid, cmap="gray", vmin=0.0, vmax=1.0)


def _plot_losses(path, hist):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = range(1, len(hist["g_loss"]) + 1)
    ax.plot(epochs, hist["g_loss"], marker="o", label="generator")
    ax.plot(epochs, hist["d_loss"], marker="o", label="discriminator")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean binary cross-entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)

