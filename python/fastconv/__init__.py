"""fastconv: the NumPy CNN layers of *Deep Learning from Scratch*, on fast C++ kernels.

Change ``from common.layers import *`` to ``from fastconv.layers import *``; the networks, optimizers and
trainer of the book run unchanged, with the same numbers.
"""

from __future__ import annotations

import os as _os

import numpy as _np

from ._backend import CUDA_REASON, _cpu

__version__ = _cpu.build_info()["version"]

__all__ = [
    "__version__",
    "info",
    "set_num_threads",
    "get_num_threads",
    "cuda_available",
    "get_array_module",
]


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel uses (default: OpenMP's, i.e. ``OMP_NUM_THREADS`` or all cores)."""
    if isinstance(n, bool) or not isinstance(n, (int, _np.integer)):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: number of threads must be >= 1, got {n}")
    _cpu.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of threads every kernel uses."""
    return int(_cpu.get_num_threads())


def cuda_available() -> bool:
    """True when the CUDA kernels are built and a device is visible."""
    return CUDA_REASON is None


def get_array_module(x):
    """Return the array module of ``x``: ``numpy`` (``cupy`` once CUDA arrays are supported)."""
    return _np


def info() -> dict:
    """Build and run-time facts: version, compiler, SIMD level in use, threads, CUDA built or why not."""
    b = _cpu.build_info()
    return {
        "version": b["version"],
        "compiler": b["compiler"],
        "simd": _cpu.cpu_isa(),
        "simd_compiled": list(b["simd_compiled"]),
        "simd_supported": list(_cpu.supported_isas()),
        "simd_forced": _os.environ.get("FASTCONV_ISA"),
        "openmp": bool(b["openmp"]),
        "num_threads": get_num_threads(),
        "cuda": "available" if CUDA_REASON is None else f"not available: {CUDA_REASON}",
        "numpy": _np.__version__,
        "sanitizers": b["sanitizers"] or None,
        "avx512_emulated": bool(b["avx512_emulated"]),
    }
