"""Shared timing helpers for bench/: warm up, take the minimum of N repeats (BLISlab), describe the machine."""

from __future__ import annotations

import os
import platform
import time


def best_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Minimum wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` untimed runs."""
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
