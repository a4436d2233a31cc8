"""Reduced precision: the dtypes by name, mixed-precision training (float32 master weights, loss scaling), and
the compute policy (``set_compute_dtype``: float64 arrays computed in float32 / float16 / bfloat16, at the end).

``Trainer(..., precision="float16")`` (and ``fastconv train --precision float16``) trains a network whose
parameters and activations are float16, as the book's ch08 suggests, without losing the small updates that
float16 cannot hold: :class:`MixedPrecision` keeps a float32 **master copy** of every parameter; each step's
float16 gradients are converted to float32, divided by the loss scale, and the optimizer updates the masters;
the float16 parameters are then the masters rounded once (round to nearest even). The optimizer's own state
(momenta, Adam's moments) is float32 too, since it is keyed to the masters.

**Loss scaling (float16 only)**, as PyTorch's ``GradScaler`` does it: the loss layer's gradient is multiplied by
the scale (``loss_scale`` of :class:`fastconv.layers.SoftmaxWithLoss` and the other loss layers) so that small
gradients stay above float16's smallest subnormal (6e-8) through the backward pass; the scale starts at 2**16,
doubles after 2000 consecutive steps with finite gradients, and a step whose gradients hold an inf or NaN is
skipped (the masters and the optimizer stay as they were) and halves the scale. The scale is a power of two,
so scaling and unscaling are exact. bfloat16 has float32's exponent range and needs no scaling: its scale stays 1
and a non-finite gradient is a diverged run, as in float32.

``float16`` is NumPy's; ``bfloat16`` is ``ml_dtypes.bfloat16`` (``pip install 'fastconv[bf16]'``), imported only
when asked for.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from . import _backend

__all__ = ["COMPUTE_DTYPES", "POLICY_OPS", "PRECISIONS", "LossScaler", "MixedPrecision", "compute_dtype",
           "dtype_of", "first_non_finite", "get_compute_dtype", "set_compute_dtype"]

PRECISIONS = ("float32", "float16", "bfloat16")


def dtype_of(precision) -> np.dtype:
    """The NumPy dtype named by ``precision``: ``"float32"``, ``"float16"`` or ``"bfloat16"``."""
    if precision == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as exc:
            raise ImportError(
                "precision='bfloat16' needs the ml_dtypes package: pip install 'fastconv[bf16]' "
                "(or pip install ml_dtypes)"
            ) from exc
        return np.dtype(ml_dtypes.bfloat16)
    if precision in ("float32", "float16"):
        return np.dtype(precision)
    raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


def first_non_finite(grads: dict):
    """The key of the first gradient holding an inf or NaN, or None (the Trainer's divergence check too)."""
    return next((k for k, g in grads.items() if not np.isfinite(g).all()), None)


def _half_kernel(a: np.ndarray, op: str):
    """fastconv's own conversion kernel (``half_widen_f16`` ...) for a C-contiguous 16-bit NumPy array, else None.
    NumPy's float16 casts are several times slower (measured: DeepConvNet's 123,552 parameters to float32 in
    107 us by ``astype``, 21 us by the kernel; float32 back into float16 203 us against 16 us). The kernels give
    NumPy's (and ml_dtypes') bits for every value but NaN, which stays NaN with its own payload (quieted, as the
    F16C instructions do)."""
    if type(a) is not np.ndarray or not a.flags.c_contiguous or not _backend.is_half(a.dtype):
        return None
    return getattr(_backend._cpu, f"half_{op}_{_backend.KERNEL_DTYPES[a.dtype]}")


def _widened(g) -> np.ndarray:
    """A new float32 array holding g (16-bit), exactly."""
    fn = _half_kernel(g, "widen")
    if fn is None:
        return g.astype(np.float32)
    out = np.empty(g.shape, np.float32)
    fn(g.reshape(-1), out.reshape(-1))
    return out


def _round_into(p, master: np.ndarray) -> None:
    """p[...] = master rounded to p's 16-bit dtype (to nearest, ties to even, as NumPy's cast; beyond the largest
    finite value, inf, without NumPy's overflow warning on either path)."""
    fn = _half_kernel(p, "narrow")
    if fn is None or master.dtype != np.float32 or not master.flags.c_contiguous or master.shape != p.shape:
        with np.errstate(over="ignore"):
            p[...] = master
    else:
        fn(master.reshape(-1), p.reshape(-1))


class LossScaler:
    """Dynamic loss scale (PyTorch's ``GradScaler`` rule).

    Parameters
    ----------
    init_scale : float
        The first scale (2**16).
    growth_factor, backoff_factor : float
        The scale is multiplied by ``growth_factor`` (2) after ``growth_interval`` (2000) consecutive finite
        steps, and by ``backoff_factor`` (0.5) at a step with a non-finite gradient, which is skipped.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.scale = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        if not (self.scale > 0 and self.growth_factor > 1 and 0 < self.backoff_factor < 1
                and self.growth_interval >= 1):
            raise ValueError(
                f"LossScaler: expected init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, "
                f"growth_interval >= 1; got {init_scale}, {growth_factor}, {backoff_factor}, {growth_interval}"
            )
        self.good_steps = 0  # consecutive finite steps since the last change of scale
        self.skipped = 0  # steps skipped so far

    def update(self, finite: bool) -> None:
        """After a step: grow the scale after ``growth_interval`` finite steps, back off after a bad one."""
        if finite:
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0
        else:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1

    def state(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state(self, state: dict) -> None:
        scale, good, skipped = state["scale"], state["good_steps"], state["skipped"]
        if not (isinstance(scale, float) and scale > 0 and isinstance(good, int) and good >= 0
                and isinstance(skipped, int) and skipped >= 0):
            raise ValueError(f"loss scaler state: expected a scale > 0 and counts >= 0, got {state!r}")
        self.scale, self.good_steps, self.skipped = scale, good, skipped


class MixedPrecision:
    """Float32 master weights for a network whose ``params`` are float16 or bfloat16, and the loss scale.

    Parameters
    ----------
    params : dict of str -> ndarray
        The network's parameters, all of one reduced dtype (float16 or bfloat16); they stay the arrays the
        layers hold and are overwritten in place after every applied step.
    scaler : LossScaler or None, optional
        Default: a :class:`LossScaler` for float16, none (scale 1) for bfloat16.
    """

    def __init__(self, params: dict, scaler="auto"):
        dtypes = {v.dtype for v in params.values()}
        if len(dtypes) != 1:
            raise ValueError(f"params: expected one dtype, got {sorted(str(d) for d in dtypes)}")
        self.dtype = dtypes.pop()
        if self.dtype.itemsize != 2 or self.dtype.kind not in "fV":
            raise ValueError(f"params: expected float16 or bfloat16 parameters, got {self.dtype}")
        self.master = {k: v.astype(np.float32) for k, v in params.items()}
        if scaler == "auto":
            scaler = LossScaler() if self.dtype == np.float16 else None
        self.scaler = scaler

    @property
    def loss_scale(self) -> float:
        return 1.0 if self.scaler is None else self.scaler.scale

    def unscale(self, grads: dict) -> dict:
        """The gradients in float32, divided by the loss scale (exact: a power of two)."""
        inv = np.float32(1.0 / self.loss_scale)
        out = {}
        for k, g in grads.items():
            g32 = _widened(g)
            if inv != 1:
                g32 *= inv
            out[k] = g32
        return out

    def step(self, params: dict, grads32: dict, update) -> bool:
        """Apply ``update(master, grads32)`` (the optimizer's) and round the masters into ``params``, unless a
        gradient is not finite and there is a scaler: then skip, back off the scale and return False."""
        finite = first_non_finite(grads32) is None
        if self.scaler is not None:
            self.scaler.update(finite)
            if not finite:
                return False
        update(self.master, grads32)
        for k, p in params.items():
            _round_into(p, self.master[k])
        return True

    def state(self) -> tuple[dict, dict]:
        """(JSON-able scalars, arrays) for a checkpoint: the scaler's state and the master weights."""
        meta = {"dtype": str(self.dtype), "scaler": None if self.scaler is None else self.scaler.state()}
        return meta, {f"master/{k}": v for k, v in self.master.items()}

    def load_state(self, meta: dict, arrays: dict, where: str = "checkpoint") -> None:
        if meta.get("dtype") != str(self.dtype):
            raise ValueError(f"{where}: written with precision {meta.get('dtype')}, this run uses {self.dtype}")
        if (meta.get("scaler") is None) != (self.scaler is None):
            raise ValueError(f"{where}: its loss-scaler state does not match this run's precision")
        for k, v in self.master.items():
            saved = arrays.get(f"master/{k}")
            if saved is None or saved.shape != v.shape or saved.dtype != np.float32:
                raise ValueError(f"{where}: master weight {k!r} missing or not float32 of shape {v.shape}")
        for k, v in self.master.items():
            v[...] = arrays[f"master/{k}"]
        if self.scaler is not None:
            self.scaler.load_state(meta["scaler"])


# ======================================================================================================
# the compute policy: float64 arrays computed in a narrower type

COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
# The ops (fastconv.ops names) whose float64 kernels follow the policy: those with f64_as_* kernels (a test checks
# this list against the compiled module).
POLICY_OPS = ("affine_backward", "affine_forward", "conv_backward", "conv_forward", "deconv_backward",
              "deconv_forward", "gemm")
_SUFFIX = {"float32": "f64_as_f32", "float16": "f64_as_f16", "bfloat16": "f64_as_bf16"}


def set_compute_dtype(dtype) -> None:
    """Compute float64 arrays in ``dtype`` ("float32", "float16", "bfloat16"), or exactly (``None``, the default).

    For the book's networks, whose weights ``np.random.randn`` makes float64: under a policy the GEMM-bound ops
    (``POLICY_OPS``: convolution of every geometry and its backward, transposed convolution, ``gemm``, the affine
    ops; so every layer built on them, e.g. ``Convolution``, ``Deconvolution``, ``Affine``, the sequel's
    ``MatMul`` / ``TimeAffine``, Keras' ``Dense`` and ``Conv2D``) convert their float64 inputs inside the kernels
    (while staging a chunk of images or packing a GEMM panel, never in a pass of their own) and return float64
    results and gradients, so the book's code, its in-place optimizers and ``load_params`` work unchanged.

    - "float32": inputs rounded to float32, float32 accumulation on the float32 kernels, the float32 results
      widened to float64 exactly; so within float32 rounding of the exact path: a sum of K products is within
      about ``(K + 3) * 2**-24 * sum|a||b|`` of the exact one (K roundings of the sum, two of the inputs, one of
      the product).
    - "float16" / "bfloat16": inputs rounded once (to nearest even) to the 16-bit type, float32 accumulation,
      results rounded to the 16-bit type: bit for bit the float16 / bfloat16 kernels on the rounded inputs. No
      speed gain on a CPU without 16-bit arithmetic; it shows what a 16-bit network would compute.

    Every other op stays exact float64 under a policy: ReLU and the other activations, max and average pooling,
    softmax and the losses, dropout, batch normalisation, im2col / col2im, the recurrent, attention and
    embedding kernels and the optimizers (memory-bound passes, or not yet converted). float32 / float16 /
    bfloat16 arrays are not affected.
    The policy is process-wide (as ``set_num_threads``); ``compute_dtype(...)`` sets it for a ``with`` block.

    Parameters
    ----------
    dtype : str, NumPy dtype or None
        "float32", "float16", "bfloat16" (or the NumPy / ml_dtypes dtype of that name), or None for exact float64.
    """
    suffix = _suffix_of(dtype, "set_compute_dtype")
    with _lock:
        if _blocks:
            _blocks[-1][1] = suffix  # inside a block: that block's exit still restores what preceded it
        else:
            _base[0] = suffix
        _apply()


# The policy outside every ``compute_dtype`` block, and the blocks open now as [token, suffix] in the order they
# were entered. A block's exit removes its own entry, wherever it is, so blocks opened and closed by several
# threads in any interleaving leave the policy as it was before the first of them (restoring "the previous
# policy" instead left the policy of a block that had already ended).
_lock = threading.Lock()
_base: list = [None]
_blocks: list = []


def _suffix_of(dtype, where: str):
    """The kernel suffix of policy ``dtype`` (None for exact float64); a one-line ValueError for anything else."""
    if dtype is not None and not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except (TypeError, ValueError):
            pass
    if dtype is not None and not (isinstance(dtype, str) and dtype in _SUFFIX):
        raise ValueError(f"{where}: dtype {dtype!r}, expected 'float32', 'float16', 'bfloat16' or None")
    return None if dtype is None else _SUFFIX[dtype]


def _apply() -> None:
    """Under ``_lock``: the policy in force is the latest open block's, else the one set outside blocks."""
    _backend.policy_suffix = _blocks[-1][1] if _blocks else _base[0]


def get_compute_dtype() -> str | None:
    """The compute policy in force: "float32", "float16", "bfloat16", or None (exact float64)."""
    suffix = _backend.policy_suffix
    return None if suffix is None else next(k for k, v in _SUFFIX.items() if v == suffix)


@contextlib.contextmanager
def compute_dtype(dtype):
    """``with compute_dtype("float32"): ...`` runs the block under that policy (see ``set_compute_dtype``) and
    restores the previous one afterwards, also when the block raises. Blocks entered and left by several threads
    in any order (the policy is still process-wide: the latest open block's applies) leave the policy as it was
    before the first of them."""
    entry = [object(), _suffix_of(dtype, "set_compute_dtype")]
    with _lock:
        _blocks.append(entry)
        _apply()
    try:
        yield
    finally:
        with _lock:
            _blocks.remove(entry)
            _apply()
