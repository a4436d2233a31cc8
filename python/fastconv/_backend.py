"""The only importer of the compiled modules, and the one place that picks, for an argument, the array module that
allocates its results (``array_module``) and the kernel module that computes them (``kernels``).

``_cpu`` is always built. ``CUDA_REASON`` is ``None`` when CUDA can be used, otherwise it says why not,
telling apart the three cases: not built, built but its libraries do not load, built but no device.
``KERNEL_DTYPES`` lists the dtypes the kernels are built for, with the suffix of their entry points
(``conv_forward_f32``); a new dtype joins the Python side here, as it joins the C++ side in csrc/common/dtype.h.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from . import _cpu

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

KERNEL_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

__all__ = ["_cpu", "_cuda", "CUDA_REASON", "KERNEL_DTYPES", "array_module", "kernels", "kernel"]


def array_module(x):
    """The array module that holds ``x`` and allocates results beside it: ``numpy`` (``cupy`` for CUDA arrays
    once the CUDA kernels exist; until then ``fastconv._checks`` rejects them with ``CUDA_REASON``)."""
    return np


def kernels(x):
    """The compiled kernel module for arrays like ``x``: ``fastconv._cpu`` (``fastconv._cuda`` for CUDA arrays
    once its kernels exist)."""
    return _cpu


def kernel(name: str, dtype, x=None):
    """The entry point ``<name>_<suffix>`` of the kernel module for ``x``, for a dtype of ``KERNEL_DTYPES``."""
    return getattr(kernels(x), f"{name}_{KERNEL_DTYPES[dtype]}")
