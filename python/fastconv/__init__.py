"""fastconv: the NumPy CNN layers of *Deep Learning from Scratch*, on fast C++ kernels.

Change ``from common.layers import *`` to ``from fastconv.layers import *``; the networks, optimizers and
trainer of the book run unchanged, with the same numbers.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings

import numpy as _np

from ._backend import CUDA_REASON, OMP_WAIT, _cpu, array_module
from .precision import compute_dtype, get_compute_dtype, set_compute_dtype

__version__ = _cpu.build_info()["version"]

__all__ = [
    "__version__",
    "compute_dtype",
    "cuda_available",
    "get_array_module",
    "get_compute_dtype",
    "get_num_threads",
    "info",
    "measure_peak",
    "set_compute_dtype",
    "set_num_threads",
]


def __getattr__(name):
    # ``import fastconv as tf; tf.keras.utils.to_categorical(...)``: the Keras front end loads on first use
    if name == "keras":
        import importlib

        return importlib.import_module(".keras", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel uses (default: OpenMP's, i.e. ``OMP_NUM_THREADS`` or all cores).

    Parameters
    ----------
    n : int
        1 to ``info()["num_threads_limit"]``: 4 per CPU this process may run on (``os.sched_getaffinity``), at
        least 16. ``OMP_NUM_THREADS`` above the limit is clamped to it at import, without a warning.

    Notes
    -----
    A process forked after fastconv was imported (``os.fork``, multiprocessing's ``"fork"`` start method) runs
    every kernel on one thread, because GNU OpenMP's worker threads do not survive ``fork``: there ``n > 1``
    sets 1 and raises a ``RuntimeWarning``. Use the ``"spawn"`` or ``"forkserver"`` start method for
    multi-threaded workers.
    """
    if isinstance(n, bool) or not isinstance(n, (int, _np.integer)):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: number of threads must be >= 1, got {n}")
    limit = _cpu.thread_limit()
    if n > limit:
        raise ValueError(
            f"n: number of threads must be at most {limit} (4 per CPU this process may run on, at least 16), "
            f"got {n}"
        )
    if n > 1 and _cpu.forked_child():
        _warnings.warn(
            f"set_num_threads({n}): this process was forked after fastconv was imported and runs its "
            "kernels on 1 thread (OpenMP's threads do not survive fork); use the 'spawn' or 'forkserver' "
            "start method for multi-threaded workers",
            RuntimeWarning,
            stacklevel=2,
        )
    _cpu.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of threads every kernel uses."""
    return int(_cpu.get_num_threads())


def cuda_available() -> bool:
    """True when the CUDA kernels are built and a device is visible."""
    return CUDA_REASON is None


def get_array_module(x):
    """Return the array module of ``x``: ``numpy`` (``cupy`` once CUDA arrays are supported).

    The module fastconv allocates results with for ``x`` (``fastconv._backend.array_module``), for code that must
    run on either device (DeZero's ``get_array_module``).
    """
    return array_module(x)


def info() -> dict:
    """Build and run-time facts: version, compiler, SIMD level in use, threads, CUDA built or why not.

    ``forked_child`` is True in a process forked after fastconv was imported; its kernels run on one thread.
    """
    b = _cpu.build_info()
    return {
        "version": b["version"],
        "compiler": b["compiler"],
        "simd": _cpu.cpu_isa(),
        "simd_compiled": list(b["simd_compiled"]),
        "simd_supported": list(_cpu.supported_isas()),
        "simd_forced": _os.environ.get("FASTCONV_ISA"),
        # the AVX-512 float32 GEMM micro-kernel (used while simd is avx512): 16x16 or 12x32 per CPU
        "gemm_tile_avx512": _cpu.avx512_tile(),
        # what the CPU offers for float16 / bfloat16, and what the kernels use of it: "amx_bf16" or
        # "avx512_bf16" while the bfloat16 convolution runs its tile program on them (amx_mode: amx /
        # avx512_bf16 / emulated / off, FASTCONV_AMX; the first two while simd is avx512)
        "reduced_precision_cpu": list(_cpu.cpu_features()),
        "reduced_precision_native": (
            [{"amx": "amx_bf16", "avx512_bf16": "avx512_bf16"}[_cpu.amx_mode()]]
            if _cpu.amx_mode() in ("amx", "avx512_bf16") and _cpu.cpu_isa() == "avx512" else []),
        "amx_mode": _cpu.amx_mode(),
        "openmp": bool(b["openmp"]),
        # how the kernels' OpenMP threads wait at barriers (fastconv/_backend.py: a short spin unless the
        # environment sets OMP_WAIT_POLICY or GOMP_SPINCOUNT)
        "omp_wait": OMP_WAIT,
        "num_threads": get_num_threads(),
        "num_threads_limit": int(_cpu.thread_limit()),
        "forked_child": bool(_cpu.forked_child()),
        "cuda": "available" if CUDA_REASON is None else f"not available: {CUDA_REASON}",
        "numpy": _np.__version__,
        "sanitizers": b["sanitizers"] or None,
        "avx512_emulated": bool(b["avx512_emulated"]),
    }


def measure_peak(dtype="float32", threads=None, isa=None, seconds=0.2) -> float:
    """Measure the machine's multiply-add peak in GFLOP/s (the denominator of "% of peak" in bench/).

    Each of ``threads`` threads runs its own independent FMA chains (enough to cover FMA latency times
    pipes) in a tight loop; 2 flops per FMA lane. The result is the best of repeated runs, so it is the
    speed of an unloaded core; it carries the noise of a shared machine and is not a constant of the CPU.

    Parameters
    ----------
    dtype : str or numpy dtype, default "float32"
        ``"float32"`` or ``"float64"`` (anything :class:`numpy.dtype` maps to one of them).
    threads : int, optional
        Threads running at once (each on its own chains). Default: :func:`get_num_threads`.
    isa : str, optional
        ``"avx512"``, ``"avx2"`` or ``"scalar"`` (portable multiply + add, as the compiler vectorises it for
        the baseline ISA); one of ``info()["simd_supported"]``. Default: the GEMM's ISA in use, ``info()["simd"]``.
    seconds : float, default 0.2
        About how long to measure, in (0, 60].

    Returns
    -------
    float
        GFLOP/s of all threads together.
    """
    if isinstance(dtype, str) and dtype in ("float32", "float64"):
        name = dtype
    else:
        try:
            name = _np.dtype(dtype).name
        except TypeError as exc:
            raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from exc
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype: expected float32 or float64, got {name}")
    if threads is None:
        threads = get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, _np.integer)):
        raise TypeError(f"threads: expected an int, got {type(threads).__name__}")
    if not 1 <= threads <= 1024:
        raise ValueError(f"threads: expected 1..1024, got {threads}")
    if isa is None:
        isa = _cpu.cpu_isa()
    if not isinstance(isa, str):
        raise TypeError(f"isa: expected a str or None, got {type(isa).__name__}")
    supported = list(_cpu.supported_isas())
    if isa not in supported:
        raise ValueError(f"isa: {isa!r} is not supported by this CPU or build (supported: {', '.join(supported)})")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, _np.integer, _np.floating)):
        raise TypeError(f"seconds: expected a number, got {type(seconds).__name__}")
    seconds = float(seconds)
    if not (0.0 < seconds <= 60.0):
        raise ValueError(f"seconds: expected a duration in (0, 60], got {seconds}")
    return float(_cpu.fma_peak(name, int(threads), isa, seconds))
