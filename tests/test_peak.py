"""fastconv.measure_peak / _cpu.fma_peak: a positive finite GFLOP/s figure per ISA, dtype and thread count, and
clear errors for bad arguments. No timing assertions (speed is checked in bench/, never in unit tests)."""

import math

import fastconv
import numpy as np
import pytest
from fastconv import _cpu

SHORT = 0.01  # seconds: enough for a figure, short enough for the suite


@pytest.mark.parametrize("isa", _cpu.supported_isas())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_peak_is_positive_finite(isa, dtype, threads):
    g = fastconv.measure_peak(dtype, threads=threads, isa=isa, seconds=SHORT)
    assert isinstance(g, float)
    assert math.isfinite(g) and g > 0, f"{isa} {dtype} {threads}: {g}"
    g2 = _cpu.fma_peak(dtype, threads, isa, SHORT)
    assert math.isfinite(g2) and g2 > 0, f"_cpu {isa} {dtype} {threads}: {g2}"


def test_peak_defaults():
    assert fastconv.measure_peak(seconds=SHORT) > 0  # threads: get_num_threads(), isa: the GEMM's
    assert fastconv.measure_peak(np.float64, seconds=SHORT) > 0
    assert fastconv.measure_peak(np.dtype(np.float32), threads=np.int64(1), seconds=1e-3) > 0
    assert _cpu.fma_peak(seconds=SHORT) > 0
    assert "measure_peak" in fastconv.__all__


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": np.int32}, ValueError, "dtype"),
        ({"dtype": "no-such-type"}, TypeError, "dtype"),
        ({"dtype": 3.5}, TypeError, "dtype"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": -1}, ValueError, "threads"),
        ({"threads": 5000}, ValueError, "threads"),
        ({"threads": 1.0}, TypeError, "threads"),
        ({"threads": True}, TypeError, "threads"),
        ({"threads": "2"}, TypeError, "threads"),
        ({"isa": "sse9"}, ValueError, "isa"),
        ({"isa": 2}, TypeError, "isa"),
        ({"seconds": 0}, ValueError, "seconds"),
        ({"seconds": -0.1}, ValueError, "seconds"),
        ({"seconds": float("nan")}, ValueError, "seconds"),
        ({"seconds": float("inf")}, ValueError, "seconds"),
        ({"seconds": 61}, ValueError, "seconds"),
        ({"seconds": "0.1"}, TypeError, "seconds"),
        ({"seconds": None}, TypeError, "seconds"),
    ],
)
def test_measure_peak_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastconv.measure_peak(**kwargs)


def test_unsupported_isa_rejected():
    missing = [isa for isa in ("avx512", "avx2", "scalar") if isa not in _cpu.supported_isas()]
    if not missing:
        pytest.skip("every ISA is supported here")
    with pytest.raises(ValueError, match="isa"):
        fastconv.measure_peak(isa=missing[0], seconds=SHORT)
    with pytest.raises(ValueError, match="isa"):
        _cpu.fma_peak("float32", 1, missing[0], SHORT)


@pytest.mark.parametrize(
    "args, match",
    [
        (("float16", 1, None, SHORT), "dtype"),
        (("float32", 0, None, SHORT), "threads"),
        (("float32", 2000, None, SHORT), "threads"),
        (("float32", 1, "sse9", SHORT), "isa"),
        (("float32", 1, None, 0.0), "seconds"),
        (("float32", 1, None, float("nan")), "seconds"),
        (("float32", 1, None, 100.0), "seconds"),
    ],
)
def test_binding_validates(args, match):
    """The binding is the second line of defence for direct callers of fastconv._cpu."""
    with pytest.raises(ValueError, match=match):
        _cpu.fma_peak(*args)
