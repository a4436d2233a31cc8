"""Shared timing helpers for bench/: warm up, take the minimum of N repeats (BLISlab), describe the machine."""

from __future__ import annotations

import os
import platform
import time


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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    import numpy as np

    import fastconv

    info = fastconv.info()
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs | fastconv {info['version']} "
        f"simd={info['simd']} threads={info['num_threads']} | numpy {np.__version__} | python {platform.python_version()}"
    )
