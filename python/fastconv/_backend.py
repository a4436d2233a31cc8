"""The only importer of the compiled modules, and the one place that picks, for an argument, the array module that
allocates its results (``array_module``) and the kernel module that computes them (``kernels``).

``_cpu`` is always built. ``CUDA_REASON`` is ``None`` when CUDA can be used, otherwise it says why not,
telling apart the three cases: not built, built but its libraries do not load, built but no device.
``KERNEL_DTYPES`` lists the dtypes the kernels are built for, with the suffix of their entry points
(``conv_forward_f32``); a new dtype joins the Python side here, as it joins the C++ side in csrc/common/dtype.h.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

# libgomp, the OpenMP runtime of the kernels, reads its wait policy once, when it is loaded: by default a
# thread that reaches a barrier first spins about 300,000 times before it sleeps. On a host whose cores are
# shared its partner is often descheduled, and the spinning thread holds the core the partner needs.
# Measured, DeepConvNet's training step (batch 100, 2 threads, Intel Xeon Emerald Rapids, a niced compile job
# beside it): 336-352 ms with the default, 52-58 ms with GOMP_SPINCOUNT 100-3000 (54-68 ms with
# OMP_WAIT_POLICY=passive). Unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set), fastconv loads it
# with a short spin, then removes the variable again, so that OpenMP runtimes loaded later (PyTorch bundles
# its own) and child processes see the environment the user set. ``OMP_WAIT`` says which setting is in
# effect (fastconv.info()["omp_wait"]).
_SPIN_VAR, _SPIN = "GOMP_SPINCOUNT", "3000"
_user_wait = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", _SPIN_VAR) if k in os.environ}
if not _user_wait:
    os.environ[_SPIN_VAR] = _SPIN
try:
    from . import _cpu
finally:
    if not _user_wait:
        os.environ.pop(_SPIN_VAR, None)
OMP_WAIT = (
    ", ".join(f"{k}={v}" for k, v in _user_wait.items()) + " (the environment's)"
    if _user_wait
    else f"{_SPIN_VAR}={_SPIN} (fastconv's, set while loading its OpenMP runtime)"
)

_cuda = None
CUDA_REASON: str | None
if importlib.util.find_spec(f"{__package__}._cuda") is None:
    CUDA_REASON = "fastconv._cuda was not built (CMake: " + str(_cpu.build_info()["cuda_status"]) + ")"
else:
    try:
        from . import _cuda  # type: ignore[attr-defined,no-redef]
    except ImportError as exc:  # pragma: no cover - a broken install
        CUDA_REASON = f"fastconv._cuda is built but cannot be loaded: {exc}"
    else:
        _why = _cuda.device_status()
        if _why:
            CUDA_REASON = f"fastconv._cuda is built but {_why}"
        else:  # pragma: no cover - needs a GPU
            # The kernels compile and load, but fastconv.ops does not dispatch to them until their bindings and
            # tests have run on a GPU (the CUDA backend's issue); until then CuPy arrays are refused, saying so.
            CUDA_REASON = (f"fastconv._cuda is built and sees {_cuda.device_name()}, but its kernels are not yet "
                           "bound to fastconv.ops")



def is_bfloat16(dtype) -> bool:
    """Whether ``dtype`` is ``ml_dtypes.bfloat16``, told by its name and module so that ml_dtypes is never imported
    here (an array of it exists only where ml_dtypes was imported)."""
    t = getattr(dtype, "type", None)
    return getattr(dtype, "name", None) == "bfloat16" and getattr(t, "__module__", "").startswith("ml_dtypes")


class _KernelDtypes(dict):
    """dtype -> suffix of the kernel entry points; ml_dtypes' bfloat16 is recognised by ``is_bfloat16``."""

    def __missing__(self, key):
        if is_bfloat16(key):
            return "bf16"
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or is_bfloat16(key)


# float16 and bfloat16 are 16-bit storage types with float32 arithmetic; only the ops listed in
# csrc/common/dtype.h's FC_HALF_TYPES registrations have kernels for them (``_checks.floats(..., half=True)``).
KERNEL_DTYPES = _KernelDtypes({np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.float16): "f16"})
HALF_SUFFIXES = ("f16", "bf16")

__all__ = ["CUDA_REASON", "HALF_SUFFIXES", "KERNEL_DTYPES", "OMP_WAIT", "_cpu", "_cuda", "array_module",
           "is_bfloat16", "is_half", "kernel", "kernels"]


def is_half(dtype) -> bool:
    """Whether ``dtype`` is one of the 16-bit storage types (float16, bfloat16)."""
    return dtype in KERNEL_DTYPES and KERNEL_DTYPES[dtype] in HALF_SUFFIXES


def array_module(x):
    """The array module that holds ``x`` and allocates results beside it: ``numpy`` (``cupy`` for CUDA arrays
    once the CUDA kernels exist; until then ``fastconv._checks`` rejects them with ``CUDA_REASON``)."""
    return np


def kernels(x):
    """The compiled kernel module for arrays like ``x``: ``fastconv._cpu`` (``fastconv._cuda`` for CUDA arrays
    once its kernels exist)."""
    return _cpu


# The compute policy (fastconv.set_compute_dtype): None, or the suffix of the float64 kernels that compute in a
# narrower type ("f64_as_f32", "f64_as_f16", "f64_as_bf16"; csrc/common/policy.h). Set only by fastconv.precision.
policy_suffix: str | None = None


def kernel(name: str, dtype, x=None):
    """The entry point ``<name>_<suffix>`` of the kernel module for ``x``, for a dtype of ``KERNEL_DTYPES``.

    While a compute policy is set, float64 arrays go to ``<name>_f64_as_<policy>`` where the op has that kernel
    (the ops of ``fastconv.precision.POLICY_OPS``) and to the exact float64 kernel otherwise: this is the one place
    that applies the policy."""
    module, suffix = kernels(x), KERNEL_DTYPES[dtype]
    if policy_suffix is not None and suffix == "f64":
        fn = getattr(module, f"{name}_{policy_suffix}", None)
        if fn is not None:
            return fn
    return getattr(module, f"{name}_{suffix}")
