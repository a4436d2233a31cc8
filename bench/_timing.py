"""Shared timing helpers for bench/: warm up, take the minimum of N repeats (BLISlab), describe the machine."""

from __future__ import annotations

import os
import platform
import sys
import time

# --isa LEVEL: the environment that caps fastconv (FASTCONV_ISA) and PyTorch (ATen's kernels: ATEN_CPU_CAPABILITY;
# oneDNN's convolutions: ONEDNN_MAX_CPU_ISA) at the same instruction set. Both read it once, when they load.
ISA_ENV = {
    "avx2": {"FASTCONV_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"FASTCONV_ISA": "avx512", "ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}


# NumPy's OpenBLAS keeps its worker threads spinning for a while after every BLAS call. An OpenMP kernel
# started in that window shares its cores with spinning threads and waits for a scheduler slice (measured
# here: a 0.07 ms ReLU timed at 7.9 ms right after the reference's matmuls). Timing blocks therefore start
# after a pause long enough for those threads to park, so each side is timed on an otherwise idle machine.
SETTLE_S = 0.3


def best_time(fn, repeat: int = 5, warmup: int = 1, settle: bool = True) -> float:
    """Minimum wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` untimed runs."""
    if settle:
        time.sleep(SETTLE_S)
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def interleaved_best(fns: dict, rounds: int = 2, repeat: int = 5, warmup: int = 1, settle: bool = True) -> dict:
    """Minimum time of each ``fns[name]()`` over ``rounds`` alternating blocks of ``best_time(fn, repeat)``.

    The blocks of different implementations alternate (A B C, then C B A, ...), so a change of load on a shared
    host during the run hits every implementation rather than one; each keeps its best block.
    """
    names = list(fns)
    best = {name: float("inf") for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            best[name] = min(best[name], best_time(fns[name], repeat, warmup, settle))
    return best


def force_isa(argv=None) -> str | None:
    """Apply ``--isa avx2|avx512`` (or ``--isa=...``) from ``argv`` (default ``sys.argv``) to the environment of
    fastconv and PyTorch: see ISA_ENV. Call it before either is imported; it fails loudly if one already is,
    since neither would see the change. Returns the level, or None when the option is absent. The option stays in
    ``argv`` for the script's own parser (which should accept ``--isa`` with ``choices=ISA_ENV``)."""
    argv = sys.argv[1:] if argv is None else argv
    level = None
    for i, arg in enumerate(argv):
        if arg == "--isa" and i + 1 < len(argv):
            level = argv[i + 1]
        elif arg.startswith("--isa="):
            level = arg.split("=", 1)[1]
    if level is None or level not in ISA_ENV:
        return None  # absent, or a bad value the script's parser reports
    loaded = [m for m in ("fastconv", "torch") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"force_isa must run before importing {', '.join(loaded)}")
    os.environ.update(ISA_ENV[level])
    return level


def isa_line(level: str | None) -> str:
    """What ``--isa`` set, for the header of a benchmark's output."""
    if level is None:
        return "ISA: each library's best for this CPU"
    return "ISA forced to " + level + ": " + " ".join(f"{k}={v}" for k, v in ISA_ENV[level].items())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def torch_version() -> str | None:
    """Installed PyTorch version without importing it (None when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def numpy_blas() -> str:
    """Name and version of the BLAS NumPy was built with, e.g. 'scipy-openblas 0.3.31' ('unknown' if hidden)."""
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown BLAS"


def machine_line(threads: int | None = None) -> str:
    """One line naming the CPU, fastconv's ISA in use and thread count, NumPy (+ BLAS), PyTorch and Python."""
    import numpy as np

    import fastconv

    info = fastconv.info()
    tv = torch_version()
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs | fastconv {info['version']} "
        f"simd={info['simd']} (supported: {','.join(info['simd_supported'])}; avx512 gemm tile "
        f"{info['gemm_tile_avx512']}) "
        f"threads={threads if threads is not None else info['num_threads']} | numpy {np.__version__} "
        f"({numpy_blas()}) | torch {tv or 'not installed'} | python {platform.python_version()}"
    )
